package portico

import (
	"context"
	"math"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// RetryPolicy says how a Client sends a call again after a failure the gateway marked
// retry-safe: status UNAVAILABLE with ErrorInfo metadata retry_safe = "true", which the
// gateway sets only when the request certainly started no generation at a provider.
// Every other failure (an upstream 500, a cut-off answer, a stream that already
// produced chunks) is returned on the first attempt, so one call is never billed twice.
//
// The wait before retry n (n = 1, 2, ...) is a random point in the upper half of
// InitialBackoff * Multiplier^(n-1), capped at MaxBackoff; a RetryInfo delay from the
// gateway replaces it. No retry starts when the wait would pass the call's deadline.
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

// DefaultRetryPolicy is what a Client uses unless WithRetryPolicy or WithoutRetries
// says otherwise: 3 attempts, waits from 200 ms growing twofold up to 5 s.
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
	return time.Duration(ceiling/2 + rand.Float64()*ceiling/2)
}

// delayBefore returns how long to wait before attempt made+1 after err, and false when
// err is final: not retry-safe, the attempts are used up, or the wait would pass the
// deadline of ctx.
func (p RetryPolicy) delayBefore(ctx context.Context, made int, err error) (time.Duration, bool) {
	perr, ok := AsError(err)
	if !ok || perr.Code != codes.Unavailable || !perr.RetrySafe() || made >= p.MaxAttempts {
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

// retryUnary makes a unary call, again while its failure is retry-safe.
func retryUnary[T any](ctx context.Context, p RetryPolicy, call func(context.Context) (T, error)) (T, error) {
	var zero T
	for made := 1; ; made++ {
		resp, err := call(ctx)
		if err == nil {
			return resp, nil
		}
		err = decodeError(err)
		delay, again := p.delayBefore(ctx, made, err)
		if !again {
			return zero, err
		}
		if werr := wait(ctx, delay); werr != nil {
			return zero, werr
		}
	}
}
