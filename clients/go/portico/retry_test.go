package portico_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"portico.dev/clients/go/portico"
)

// The retry tests run against a gateway of their own: each fake provider below answers
// from a script consumed one reply per request the gateway receives, so what the next
// call gets shows how many requests the previous one made.
const retryGatewayConfig = `
server: {health_probe_interval: 0, shutdown_grace: 1}
providers:
  - name: unsafe
    kind: fake
    retry: {enabled: false}
    breaker: {enabled: false}
    models: [m]
    options:
      replies:
        - error: {reason: UPSTREAM_UNAVAILABLE, message: "upstream said 500"}
        - content: "one"
        - error: {reason: UPSTREAM_UNAVAILABLE, message: "upstream said 500"}
        - content: "two"
  - name: safe
    kind: fake
    retry: {enabled: false}
    breaker: {enabled: false}
    models: [m]
    options:
      replies:
        - error: {reason: UPSTREAM_OVERLOADED, message: "upstream said 529"}
        - error: {reason: UPSTREAM_CONNECTION, message: "connection refused", retry_safe: true}
        - content: "third time lucky"
        - content: "next"
  - name: capped
    kind: fake
    retry: {enabled: false}
    breaker: {enabled: false}
    models: [m]
    options:
      replies:
        - error: {reason: SHUTTING_DOWN, message: "draining"}
        - error: {reason: SHUTTING_DOWN, message: "draining"}
        - error: {reason: SHUTTING_DOWN, message: "draining"}
        - content: "fourth"
        - error: {reason: SHUTTING_DOWN, message: "draining"}
        - content: "after"
  - name: streams
    kind: fake
    retry: {enabled: false}
    breaker: {enabled: false}
    models: [m]
    options:
      chunk_size: 4
      replies:
        - error: {reason: UPSTREAM_OVERLOADED, message: "upstream said 529"}
        - content: "streamed"
        - content: "partial answer"
          error: {reason: UPSTREAM_OVERLOADED, message: "overloaded midway", after_chunks: 1}
        - content: "still queued"
  - name: patient
    kind: fake
    retry: {enabled: false}
    breaker: {enabled: false}
    models: [m]
    options:
      replies:
        - error: {reason: UPSTREAM_OVERLOADED, message: "busy", retry_after: 30}
        - content: "too late"
  - name: limited
    kind: fake
    retry: {enabled: false}
    breaker: {enabled: false}
    models: [m]
    options:
      replies:
        - error: {reason: UPSTREAM_RATE_LIMITED, message: "429 from upstream", retry_after: 0.3}
        - content: "ok"
        - error: {reason: UPSTREAM_RATE_LIMITED, message: "429 from upstream", retry_after: 0.3}
        - content: "after the stream"
        - error: {reason: UPSTREAM_RATE_LIMITED, message: "429 from upstream", retry_after: 120}
        - content: "not waited for"
  - name: quota
    kind: fake
    retry: {enabled: false}
    breaker: {enabled: false}
    models: [m]
    options:
      replies:
        - error: {reason: UPSTREAM_QUOTA_EXCEEDED, message: "monthly quota used up"}
`

// quickRetries keeps the tests fast; the rule under test does not depend on timing.
var quickRetries = portico.WithRetryPolicy(portico.RetryPolicy{
	MaxAttempts: 3, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
})

func startRetryGateway(t *testing.T) string {
	t.Helper()
	gw, err := startGateway(retryGatewayConfig)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := gw.stop(); err != nil {
			t.Errorf("stopping the gateway: %v", err)
		}
	})
	return gw.address
}

func dialRetry(t *testing.T, address string, opts ...portico.Option) *portico.Client {
	t.Helper()
	client, err := portico.Dial(address, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client
}

func contentOf(t *testing.T, client *portico.Client, provider string) string {
	t.Helper()
	resp, err := client.Chat(callContext(t), chatRequest(provider, "hi"))
	if err != nil {
		t.Fatalf("Chat(%s): %v", provider, err)
	}
	return resp.GetContent()
}

func TestRetries(t *testing.T) {
	address := startRetryGateway(t)

	t.Run("an UNAVAILABLE that is not retry-safe is attempted once", func(t *testing.T) {
		client := dialRetry(t, address, quickRetries)
		_, err := client.Chat(callContext(t), chatRequest("unsafe", "hi"))
		perr := asPorticoError(t, err)
		if perr.Code != codes.Unavailable || perr.Metadata["retry_safe"] != "false" || perr.RetrySafe() || perr.ClientAttempts != 1 {
			t.Errorf("error = %v with metadata %v after %d attempts, want UNAVAILABLE with retry_safe=false, once",
				perr, perr.Metadata, perr.ClientAttempts)
		}
		// Had the client retried, the failed call would have consumed "one".
		if got := contentOf(t, client, "unsafe"); got != "one" {
			t.Errorf("next answer = %q, want %q", got, "one")
		}
		stream, err := client.Stream(callContext(t), chatRequest("unsafe", "hi"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Response(); err == nil {
			t.Error("the stream succeeded; want the scripted failure")
		}
		if got := contentOf(t, client, "unsafe"); got != "two" {
			t.Errorf("answer after the stream = %q, want %q", got, "two")
		}
	})

	t.Run("a retry-safe UNAVAILABLE is retried until it succeeds", func(t *testing.T) {
		client := dialRetry(t, address, quickRetries)
		if got := contentOf(t, client, "safe"); got != "third time lucky" {
			t.Errorf("answer = %q, want %q", got, "third time lucky")
		}
		if got := contentOf(t, client, "safe"); got != "next" {
			t.Errorf("next answer = %q, want %q: the first call made more than three requests", got, "next")
		}
	})

	t.Run("attempts stop at the policy's limit and WithoutRetries turns them off", func(t *testing.T) {
		twice := dialRetry(t, address, portico.WithRetryPolicy(portico.RetryPolicy{MaxAttempts: 2, InitialBackoff: 10 * time.Millisecond}))
		_, err := twice.Chat(callContext(t), chatRequest("capped", "hi"))
		if perr := asPorticoError(t, err); perr.Reason != "ERROR_REASON_SHUTTING_DOWN" || !perr.RetrySafe() {
			t.Errorf("error = %v, want a retry-safe SHUTTING_DOWN", perr)
		}
		// Two attempts used two of the three failures, so a single attempt meets the third.
		once := dialRetry(t, address, portico.WithoutRetries())
		if _, err := once.Chat(callContext(t), chatRequest("capped", "hi")); err == nil {
			t.Fatal("the call succeeded; want the third scripted failure")
		}
		if got := contentOf(t, once, "capped"); got != "fourth" {
			t.Errorf("answer = %q, want %q", got, "fourth")
		}
		if _, err := once.Chat(callContext(t), chatRequest("capped", "hi")); err == nil {
			t.Fatal("the call succeeded; want the scripted failure")
		}
		if got := contentOf(t, once, "capped"); got != "after" {
			t.Errorf("answer = %q, want %q", got, "after")
		}
	})

	t.Run("a stream is retried before its first chunk and never after", func(t *testing.T) {
		client := dialRetry(t, address, quickRetries)
		stream, err := client.Stream(callContext(t), chatRequest("streams", "hi"))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Response()
		if err != nil || resp.GetContent() != "streamed" {
			t.Fatalf("Response = %v, %v; want %q", resp, err, "streamed")
		}
		broken, err := client.Stream(callContext(t), chatRequest("streams", "hi"))
		if err != nil {
			t.Fatal(err)
		}
		var text strings.Builder
		var streamErr error
		for chunk, err := range broken.Chunks() {
			if err != nil {
				streamErr = err
				break
			}
			text.WriteString(chunk.GetContent())
		}
		perr := asPorticoError(t, streamErr)
		if text.String() != "part" || perr.Reason != "ERROR_REASON_UPSTREAM_OVERLOADED" || perr.RetrySafe() {
			t.Errorf("text %q, error %v (metadata %v); want %q then an OVERLOADED that is not retry-safe",
				text.String(), perr, perr.Metadata, "part")
		}
		if got := contentOf(t, client, "streams"); got != "still queued" {
			t.Errorf("next answer = %q, want %q", got, "still queued")
		}
	})

	t.Run("a 429 with RetryInfo is retried once, after the hinted delay", func(t *testing.T) {
		const hinted = 300 * time.Millisecond
		client := dialRetry(t, address) // the default policy
		var trace portico.Trace
		started := time.Now()
		resp, err := client.Chat(callContext(t), chatRequest("limited", "hi"), portico.CaptureTrace(&trace))
		elapsed := time.Since(started)
		if err != nil || resp.GetContent() != "ok" {
			t.Fatalf("Chat = %v, %v; want the answer after one retry", resp, err)
		}
		if trace.ClientAttempts != 2 {
			t.Errorf("ClientAttempts = %d, want 2 (the 429, then the answer)", trace.ClientAttempts)
		}
		// Exactly the hinted wait, not the default backoff; the upper bound only says "not hung".
		if elapsed < hinted || elapsed > hinted+5*time.Second {
			t.Errorf("the call took %s, want the hinted %s plus two quick calls", elapsed, hinted)
		}
		if n := len(trace.Attempts); n == 0 || trace.Attempts[n-1].Provider != "limited" || trace.Attempts[n-1].Outcome != "ok" || !trace.HasOverhead {
			t.Errorf("trace = %+v, want the gateway's attempt at limited ending ok, and its overhead", trace)
		}

		// A stream before its first chunk follows the same rule.
		var streamTrace portico.Trace
		stream, err := client.Stream(callContext(t), chatRequest("limited", "hi"), portico.CaptureTrace(&streamTrace))
		if err != nil {
			t.Fatal(err)
		}
		if resp, err := stream.Response(); err != nil || resp.GetContent() != "after the stream" {
			t.Fatalf("stream Response = %v, %v", resp, err)
		}
		if stream.Trace().ClientAttempts != 2 || streamTrace.ClientAttempts != 2 || !streamTrace.HasOverhead {
			t.Errorf("stream trace = %+v (captured %+v), want two client attempts and the overhead", stream.Trace(), streamTrace)
		}

		// A hint over a minute, or a RESOURCE_EXHAUSTED without one, comes back at once.
		for provider, reason := range map[string]string{"limited": "ERROR_REASON_UPSTREAM_RATE_LIMITED", "quota": "ERROR_REASON_UPSTREAM_QUOTA_EXCEEDED"} {
			_, err := client.Chat(callContext(t), chatRequest(provider, "hi"))
			perr := asPorticoError(t, err)
			if perr.Code != codes.ResourceExhausted || perr.Reason != reason || perr.ClientAttempts != 1 {
				t.Errorf("error = %v after %d attempts, want %s after one", perr, perr.ClientAttempts, reason)
			}
		}
		if got := contentOf(t, client, "limited"); got != "not waited for" {
			t.Errorf("answer after the long hint = %q, want %q", got, "not waited for")
		}
	})

	t.Run("a RetryInfo delay is honoured but never past the deadline", func(t *testing.T) {
		client := dialRetry(t, address, quickRetries)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		started := time.Now()
		_, err := client.Chat(ctx, chatRequest("patient", "hi"))
		elapsed := time.Since(started)
		perr := asPorticoError(t, err)
		if perr.Code != codes.Unavailable || perr.RetryAfter != 30*time.Second {
			t.Errorf("error = %v (RetryAfter %s), want UNAVAILABLE asking for 30s", perr, perr.RetryAfter)
		}
		if elapsed >= 2*time.Second {
			t.Errorf("the call took %s: it waited although the wait would pass the deadline", elapsed)
		}
		if got := contentOf(t, client, "patient"); got != "too late" {
			t.Errorf("next answer = %q, want %q", got, "too late")
		}
	})
}
