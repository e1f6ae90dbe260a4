package portico_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	porticov1 "portico.dev/clients/go/gen/portico/v1"
	"portico.dev/clients/go/portico"
)

// The gateway's fake provider acts out a target failing after three chunks ("one ",
// "two ", "thre") and "backup" taking over; the request's StreamFailover decides what
// the gateway does about it.

func failoverRequest(mode porticov1.StreamFailover) *porticov1.ChatRequest {
	req := chatRequest("fake", "fail over please")
	req.StreamFailover = mode
	return req
}

// readAll reads the stream to its end and returns the text of every chunk joined.
func readAll(t *testing.T, stream *portico.ChatStream) string {
	t.Helper()
	var text strings.Builder
	for chunk, err := range stream.Chunks() {
		if err != nil {
			t.Fatalf("stream failed: %v", err)
		}
		text.WriteString(chunk.GetContent())
	}
	return text.String()
}

func TestStreamRestartKeepsOnlyTheSecondAnswer(t *testing.T) {
	stream, err := newClient(t).Stream(callContext(t), failoverRequest(porticov1.StreamFailover_STREAM_FAILOVER_RESTART))
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	if got := readAll(t, stream); got != "one two thre"+"the backup answer" {
		t.Errorf("chunks' text = %q, want both targets' text in order", got)
	}
	resp, err := stream.Response()
	if err != nil {
		t.Fatalf("Response: %v", err)
	}
	if resp.GetContent() != "the backup answer" {
		t.Errorf("assembled content = %q, want only the second answer", resp.GetContent())
	}
	markers := stream.Failovers()
	if len(markers) != 1 || markers[0].GetMode() != porticov1.StreamFailover_STREAM_FAILOVER_RESTART ||
		markers[0].GetProvider() != "backup" || markers[0].GetModel() != "small" ||
		markers[0].GetReason() != "ERROR_REASON_UPSTREAM_UNAVAILABLE" {
		t.Errorf("failovers = %v, want one RESTART marker naming backup/small", markers)
	}
	if resp.GetModel() != "small" {
		t.Errorf("model = %q, want the model that took over", resp.GetModel())
	}
}

func TestStreamContinueKeepsTheTextSoFar(t *testing.T) {
	stream, err := newClient(t).Stream(callContext(t), failoverRequest(porticov1.StreamFailover_STREAM_FAILOVER_CONTINUE))
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	resp, err := stream.Response()
	if err != nil {
		t.Fatalf("Response: %v", err)
	}
	if want := "one two thre" + "the backup answer"; resp.GetContent() != want {
		t.Errorf("assembled content = %q, want %q", resp.GetContent(), want)
	}
	if m := stream.Failovers(); len(m) != 1 || m[0].GetMode() != porticov1.StreamFailover_STREAM_FAILOVER_CONTINUE {
		t.Errorf("failovers = %v, want one CONTINUE marker", m)
	}
}

func TestStreamWithoutFailoverFailsAfterThreeChunks(t *testing.T) {
	stream, err := newClient(t).Stream(callContext(t), chatRequest("fake", "fail over please"))
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	_, err = stream.Response()
	if perr := asPorticoError(t, err); perr.Code != codes.Unavailable {
		t.Errorf("error = %v, want UNAVAILABLE", perr)
	}
	if len(stream.Failovers()) != 0 {
		t.Errorf("failovers = %v, want none", stream.Failovers())
	}
}

func TestStreamTraceIsReadAtItsEnd(t *testing.T) {
	stream, err := newClient(t).Stream(callContext(t), failoverRequest(porticov1.StreamFailover_STREAM_FAILOVER_RESTART))
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	if _, err := stream.Response(); err != nil {
		t.Fatalf("Response: %v", err)
	}
	want := []portico.Attempt{
		{Provider: "primary", Model: "big", Outcome: "error", Status: "UNAVAILABLE",
			Reason: "ERROR_REASON_UPSTREAM_UNAVAILABLE", Duration: 41500 * time.Microsecond},
		{Provider: "backup", Model: "small", Outcome: "ok", Status: "OK", Duration: 120250 * time.Microsecond,
			Wait: 500 * time.Millisecond},
	}
	trace := stream.Trace()
	if len(trace.Attempts) != 2 || trace.Attempts[0] != want[0] || trace.Attempts[1] != want[1] {
		t.Errorf("attempts = %+v, want %+v", trace.Attempts, want)
	}
	if !trace.HasOverhead || trace.Overhead != 3*time.Millisecond {
		t.Errorf("overhead = %v (%v), want 3ms", trace.Overhead, trace.HasOverhead)
	}
}

func TestChatCapturesTheTrace(t *testing.T) {
	var trace portico.Trace
	resp, err := newClient(t).Chat(callContext(t), chatRequest("fake", "trace me"), portico.CaptureTrace(&trace))
	if err != nil {
		t.Fatalf("Chat: %v", err)
	}
	if resp.GetContent() != "traced" {
		t.Errorf("content = %q", resp.GetContent())
	}
	want := portico.Attempt{Provider: "fake", Model: "fake-chat", Outcome: "ok", Status: "OK",
		Duration: 7500 * time.Microsecond, Wait: 250 * time.Millisecond}
	if len(trace.Attempts) != 1 || trace.Attempts[0] != want {
		t.Errorf("attempts = %+v, want [%+v]", trace.Attempts, want)
	}
	if trace.Overhead != 1250*time.Microsecond {
		t.Errorf("overhead = %v, want 1.25ms", trace.Overhead)
	}
}

func TestErrorsCarryTheTrace(t *testing.T) {
	client := newClient(t)
	_, err := client.Chat(callContext(t), chatRequest("fake", "trace my failure"))
	unary := asPorticoError(t, err)
	stream, err := client.Stream(callContext(t), chatRequest("fake", "trace my failure"))
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	_, err = stream.Response()
	streamed := asPorticoError(t, err)
	for _, perr := range []*portico.Error{unary, streamed} {
		if perr.Code != codes.InvalidArgument {
			t.Errorf("code = %v, want INVALID_ARGUMENT", perr.Code)
		}
		if len(perr.Attempts) != 1 || perr.Attempts[0].Reason != "ERROR_REASON_UPSTREAM_BAD_REQUEST" ||
			perr.Attempts[0].Duration != 2*time.Millisecond {
			t.Errorf("attempts = %+v, want the one failed attempt", perr.Attempts)
		}
		if perr.Overhead != 500*time.Microsecond {
			t.Errorf("overhead = %v, want 0.5ms", perr.Overhead)
		}
	}
}
