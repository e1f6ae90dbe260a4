package portico

import (
	"encoding/json"
	"math"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// The trailing metadata keys of the gateway's attempt trace.
const (
	attemptsKey = "portico-attempts"
	overheadKey = "portico-overhead-ms"
)

// Attempt is one try at one target, as the gateway reports it in the
// portico-attempts trailer: Chat and Embed answers, errors and the end of a stream.
type Attempt struct {
	Provider string
	Model    string
	// Outcome is "ok", "error" or "skipped" (an open breaker, a target too slow for
	// the deadline, ...).
	Outcome string
	// Status is "OK" or the gRPC code name the attempt ended with, e.g. "UNAVAILABLE".
	Status string
	// Reason is the ErrorReason name of a failed attempt, else "".
	Reason string
	// Duration is how long the attempt took.
	Duration time.Duration
	// Wait is the retry backoff or queue wait spent before the attempt.
	Wait time.Duration
}

// Trace is the gateway's account of one call: each attempt in order and the gateway's
// own time (the call's total minus the time spent waiting on upstreams).
type Trace struct {
	Attempts []Attempt
	// Overhead is the gateway's own time; HasOverhead is false when it sent no figure.
	Overhead    time.Duration
	HasOverhead bool
	// ClientAttempts is how many times this client sent the call: 1, plus its own
	// retries (see RetryPolicy). The gateway's Attempts describe the last of them.
	ClientAttempts int
}

// CaptureTrace is a call option that fills *trace with the gateway's attempt trace
// when a call returns successfully (for a stream: when it has ended):
//
//	var trace portico.Trace
//	resp, err := client.Chat(ctx, req, portico.CaptureTrace(&trace))
//
// A failed call carries its trace in Error.Attempts; a stream also in ChatStream.Trace.
func CaptureTrace(trace *Trace) grpc.CallOption {
	return traceOption{into: trace}
}

type traceOption struct {
	grpc.EmptyCallOption // carries data for this package; gRPC ignores it
	into                 *Trace
}

// capturedTrace returns where a CaptureTrace option among opts wants the trace; nil
// when there is none.
func capturedTrace(opts []grpc.CallOption) *Trace {
	for _, opt := range opts {
		if t, ok := opt.(traceOption); ok && t.into != nil {
			return t.into
		}
	}
	return nil
}

// wireAttempt is one element of the portico-attempts JSON array.
type wireAttempt struct {
	Provider   string  `json:"provider"`
	Model      string  `json:"model"`
	Outcome    string  `json:"outcome"`
	Status     string  `json:"status"`
	Reason     string  `json:"reason"`
	DurationMs float64 `json:"duration_ms"`
	WaitMs     float64 `json:"wait_ms"`
}

// traceFromMetadata reads the trace from trailing metadata. A missing or malformed entry
// leaves its part empty: the trace describes an answer and must never hide one.
func traceFromMetadata(md metadata.MD) Trace {
	var trace Trace
	if values := md.Get(attemptsKey); len(values) > 0 {
		var items []wireAttempt
		if json.Unmarshal([]byte(values[0]), &items) == nil {
			for _, a := range items {
				trace.Attempts = append(trace.Attempts, Attempt{
					Provider: a.Provider, Model: a.Model, Outcome: a.Outcome, Status: a.Status, Reason: a.Reason,
					Duration: millis(a.DurationMs), Wait: millis(a.WaitMs),
				})
			}
		}
	}
	if values := md.Get(overheadKey); len(values) > 0 {
		if ms, err := strconv.ParseFloat(values[0], 64); err == nil && !math.IsInf(ms, 0) && !math.IsNaN(ms) {
			trace.Overhead, trace.HasOverhead = millis(ms), true
		}
	}
	return trace
}

func millis(ms float64) time.Duration {
	return time.Duration(ms * float64(time.Millisecond))
}
