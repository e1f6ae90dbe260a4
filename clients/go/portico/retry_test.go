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
		if perr.Code != codes.Unavailable || perr.Metadata["retry_safe"] != "false" || perr.RetrySafe() {
			t.Errorf("error = %v with metadata %v, want UNAVAILABLE with retry_safe=false", perr, perr.Metadata)
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
