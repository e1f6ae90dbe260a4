package portico

import (
	"context"
	"math"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// RetryPolicy says how a Client sends a call again after a failure the gateway marked
// retry-safe (ErrorInfo metadata retry_safe = "true", which the gateway sets only when
// the request certainly started no generation at a provider) and that waiting may cure:
//
//   - UNAVAILABLE: the gateway is draining, a provider's connection failed before the
//     request was written, every target's breaker is open, ...;
//   - RESOURCE_EXHAUSTED with a RetryInfo delay: a provider's 429, the gateway's own
//     rate limits, or load shedding.
//
// Every other failure (an upstream 500, a cut-off answer, a stream that already
// produced chunks, a quota with no known reset) is returned on the first attempt, so
// one call is never billed twice.
//
// The wait before retry n (n = 1, 2, ...) is a random time between zero and
// InitialBackoff * Multiplier^(n-1), capped at MaxBackoff ("full jitter"). A RetryInfo
// delay from the gateway replaces it exactly. No retry starts when the wait would pass
// the call's deadline, or when the gateway asks for more than MaxRetryInfoDelay.
type RetryPolicy struct {
	// MaxAttempts counts every attempt, the first included; 1 turns retries off.
	MaxAttempts int
	// InitialBackoff is the wait before the first retry, before jitter.
	InitialBackoff time.Duration
	// MaxBackoff caps the computed wait (a RetryInfo delay may be longer).
	MaxBackoff time.Duration
	// Multiplier grows the wait from one retry to the next.
	Multiplier float64
}

// MaxRetryInfoDelay is the longest RetryInfo delay a client waits for by itself; a
// longer one (a daily quota, say) is returned to the caller at once.
const MaxRetryInfoDelay = 60 * time.Second

// DefaultRetryPolicy is what a Client uses unless WithRetryPolicy or WithoutRetries
// says otherwise: 3 attempts in all, waits up to 200 ms growing twofold up to 5 s.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{MaxAttempts: 3, InitialBackoff: 200 * time.Millisecond, MaxBackoff: 5 * time.Second, Multiplier: 2}
}

// WithRetryPolicy replaces the default retry policy. Fields left zero take the
// default's values; MaxAttempts 1 turns retries off.
func WithRetryPolicy(p RetryPolicy) Option {
	return func(s *settings) {
		d := DefaultRetryPolicy()
		if p.MaxAttempts <= 0 {
			p.MaxAttempts = d.MaxAttempts
		}
		if p.InitialBackoff <= 0 {
			p.InitialBackoff = d.InitialBackoff
		}
		if p.MaxBackoff < p.InitialBackoff {
			p.MaxBackoff = max(d.MaxBackoff, p.InitialBackoff)
		}
		if p.Multiplier < 1 {
			p.Multiplier = d.Multiplier
		}
		s.retry = &p
	}
}

// WithoutRetries makes every call a single attempt.
func WithoutRetries() Option {
	return func(s *settings) { s.retry = &RetryPolicy{MaxAttempts: 1} }
}

func (s *settings) retryPolicy() RetryPolicy {
	if s.retry == nil {
		return DefaultRetryPolicy()
	}
	return *s.retry
}

// backoff is the jittered wait before retry number n (1 for the first).
func (p RetryPolicy) backoff(n int) time.Duration {
	ceiling := float64(p.InitialBackoff) * math.Pow(p.Multiplier, float64(n-1))
	ceiling = math.Min(ceiling, float64(p.MaxBackoff))
	return time.Duration(rand.Float64() * ceiling)
}

// worthRetrying reports whether err is a failure the policy sends again at all.
func worthRetrying(err error) (*Error, bool) {
	perr, ok := AsError(err)
	if !ok || !perr.RetrySafe() {
		return nil, false
	}
	switch perr.Code {
	case codes.Unavailable:
		return perr, true
	case codes.ResourceExhausted:
		return perr, perr.RetryAfter > 0
	}
	return nil, false
}

// delayBefore returns how long to wait before attempt made+1 after err, and false when
// err is final: not worth retrying, the attempts are used up, the gateway asked for too
// long a wait, or the wait would pass the deadline of ctx.
func (p RetryPolicy) delayBefore(ctx context.Context, made int, err error) (time.Duration, bool) {
	perr, ok := worthRetrying(err)
	if !ok || made >= p.MaxAttempts || perr.RetryAfter > MaxRetryInfoDelay {
		return 0, false
	}
	delay := perr.RetryAfter
	if delay <= 0 {
		delay = p.backoff(made)
	}
	if deadline, has := ctx.Deadline(); has && time.Until(deadline) <= delay {
		return 0, false
	}
	return delay, true
}

// wait sleeps for d, or returns the call's CANCELED / DEADLINE_EXCEEDED error when ctx
// ends first.
func wait(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return decodeError(status.FromContextError(ctx.Err()).Err())
	}
}

// retryUnary makes a unary call, again while its failure is worth retrying. Each
// attempt reads its trailers: the last attempt's trace goes into the caller's
// CaptureTrace on success and into the *Error on failure, with the client's count.
func retryUnary[T any](ctx context.Context, p RetryPolicy, opts []grpc.CallOption, call func(context.Context, []grpc.CallOption) (T, error)) (T, error) {
	var zero T
	into := capturedTrace(opts)
	for made := 1; ; made++ {
		var trailer metadata.MD
		resp, err := call(ctx, append(opts[:len(opts):len(opts)], grpc.Trailer(&trailer)))
		trace := traceFromMetadata(trailer)
		trace.ClientAttempts = made
		if err == nil {
			if into != nil {
				*into = trace
			}
			return resp, nil
		}
		err = decodeError(err)
		if perr, ok := AsError(err); ok {
			perr.Attempts, perr.Overhead, perr.ClientAttempts = trace.Attempts, trace.Overhead, made
		}
		delay, again := p.delayBefore(ctx, made, err)
		if !again {
			return zero, err
		}
		if werr := wait(ctx, delay); werr != nil {
			if perr, ok := AsError(werr); ok {
				perr.ClientAttempts = made
			}
			return zero, werr
		}
	}
}
