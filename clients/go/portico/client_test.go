package portico_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	porticov1 "portico.dev/clients/go/gen/portico/v1"
	"portico.dev/clients/go/portico"
)

// testTimeout bounds every call a test makes, so a hung gateway fails the test
// instead of hanging it.
const testTimeout = 20 * time.Second

func newClient(t *testing.T, opts ...portico.Option) *portico.Client {
	t.Helper()
	client, err := portico.Dial(gatewayAddress, opts...)
	if err != nil {
		t.Fatalf("Dial(%q): %v", gatewayAddress, err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client
}

func callContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func chatRequest(provider, prompt string) *porticov1.ChatRequest {
	return &porticov1.ChatRequest{Provider: provider, Messages: []*porticov1.Message{portico.UserMessage(prompt)}}
}

// asPorticoError fails the test unless err is an *portico.Error.
func asPorticoError(t *testing.T, err error) *portico.Error {
	t.Helper()
	if err == nil {
		t.Fatal("the call succeeded; want an error")
	}
	perr, ok := portico.AsError(err)
	if !ok {
		t.Fatalf("error %v (%T) is not a *portico.Error", err, err)
	}
	return perr
}

func TestChatReturnsTheCompleteAnswer(t *testing.T) {
	client := newClient(t)
	resp, err := client.Chat(callContext(t), &porticov1.ChatRequest{
		Provider: "fake",
		Messages: []*porticov1.Message{
			portico.SystemMessage("Answer briefly."),
			portico.UserMessage("Hello, Portico"),
		},
	})
	if err != nil {
		t.Fatalf("Chat: %v", err)
	}
	if resp.GetContent() != "Hello, Portico" {
		t.Errorf("content = %q, want the echo %q", resp.GetContent(), "Hello, Portico")
	}
	if resp.GetRole() != porticov1.Role_ROLE_ASSISTANT {
		t.Errorf("role = %v, want ROLE_ASSISTANT", resp.GetRole())
	}
	if resp.GetStopReason() != porticov1.StopReason_STOP_REASON_END_TURN {
		t.Errorf("stop reason = %v, want END_TURN", resp.GetStopReason())
	}
	if resp.GetProvider() != "fake" || resp.GetModel() != "fake-chat" {
		t.Errorf("answered by %q/%q, want fake/fake-chat (the default model)", resp.GetProvider(), resp.GetModel())
	}
	usage := resp.GetUsage()
	if usage.GetPromptTokenCount() <= 0 || usage.GetCompletionTokenCount() <= 0 ||
		usage.GetTotalTokenCount() != usage.GetPromptTokenCount()+usage.GetCompletionTokenCount() {
		t.Errorf("usage = %v, want positive counts that add up", usage)
	}
}

func TestChatReturnsToolCalls(t *testing.T) {
	client := newClient(t)
	tool, err := portico.Tool("get_weather", "The weather in a city.",
		`{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}`)
	if err != nil {
		t.Fatalf("Tool: %v", err)
	}
	req := chatRequest("fake", "What is the weather in Paris?")
	req.Tools = []*porticov1.ToolDefinition{tool}
	resp, err := client.Chat(callContext(t), req)
	if err != nil {
		t.Fatalf("Chat: %v", err)
	}
	calls := resp.GetToolCalls()
	if len(calls) != 1 || calls[0].GetName() != "get_weather" || calls[0].GetArguments() != `{"city":"Paris"}` {
		t.Fatalf("tool calls = %v, want one get_weather call with {\"city\":\"Paris\"}", calls)
	}
	if calls[0].GetId() == "" {
		t.Error("the tool call has no id")
	}
	if resp.GetStopReason() != porticov1.StopReason_STOP_REASON_TOOL_CALLS {
		t.Errorf("stop reason = %v, want TOOL_CALLS", resp.GetStopReason())
	}
}

func TestStreamDeliversContentInOrderThenTheFinalChunk(t *testing.T) {
	client := newClient(t)
	const prompt = "The quick brown fox jumps over the lazy dog"
	stream, err := client.Stream(callContext(t), chatRequest("fake", prompt))
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	defer stream.Close()

	var pieces []string
	var final *porticov1.StreamChunk
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("Recv after %d pieces: %v", len(pieces), err)
		}
		if final != nil {
			t.Fatalf("chunk %v arrived after the final chunk", chunk)
		}
		if chunk.GetFinal() {
			final = chunk
			continue
		}
		if chunk.GetContent() != "" {
			pieces = append(pieces, chunk.GetContent())
		}
	}
	// chunk_size is 4: the text arrives in order, four characters at a time.
	wantPieces := (len(prompt) + 3) / 4
	if len(pieces) != wantPieces {
		t.Errorf("got %d content chunks %q, want %d", len(pieces), pieces, wantPieces)
	}
	for i, piece := range pieces {
		if want := prompt[i*4 : min(len(prompt), i*4+4)]; piece != want {
			t.Errorf("content chunk %d = %q, want %q", i, piece, want)
		}
	}
	if final == nil {
		t.Fatal("the stream ended without a final chunk")
	}
	if final.GetStopReason() != porticov1.StopReason_STOP_REASON_END_TURN {
		t.Errorf("final stop reason = %v, want END_TURN", final.GetStopReason())
	}
	if final.GetUsage().GetCompletionTokenCount() <= 0 {
		t.Errorf("final usage = %v, want completion tokens", final.GetUsage())
	}
	if final.GetProvider() != "fake" || final.GetModel() != "fake-chat" {
		t.Errorf("final chunk names %q/%q, want fake/fake-chat", final.GetProvider(), final.GetModel())
	}
	if stream.Final() != final {
		t.Error("Final() does not return the final chunk")
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("Recv after the end = %v, want io.EOF again", err)
	}
}

func TestStreamChunksIteratorAndAssembledResponse(t *testing.T) {
	client := newClient(t)
	stream, err := client.Stream(callContext(t), chatRequest("fake", "Tell me the weather"))
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	var arguments strings.Builder
	chunks := 0
	for chunk, err := range stream.Chunks() {
		if err != nil {
			t.Fatalf("stream failed after %d chunks: %v", chunks, err)
		}
		chunks++
		for _, delta := range chunk.GetToolCallDeltas() {
			arguments.WriteString(delta.GetArgumentsDelta())
		}
	}
	if arguments.String() != `{"city":"Paris"}` {
		t.Errorf("argument fragments join to %q, want {\"city\":\"Paris\"}", arguments.String())
	}
	resp, err := stream.Response()
	if err != nil {
		t.Fatalf("Response: %v", err)
	}
	if calls := resp.GetToolCalls(); len(calls) != 1 || calls[0].GetArguments() != `{"city":"Paris"}` {
		t.Errorf("assembled tool calls = %v", calls)
	}
	if resp.GetStopReason() != porticov1.StopReason_STOP_REASON_TOOL_CALLS || resp.GetProvider() != "fake" {
		t.Errorf("assembled response = %v", resp)
	}
}

func TestStreamFailureAfterTheFirstChunksIsAnError(t *testing.T) {
	client := newClient(t)
	stream, err := client.Stream(callContext(t), chatRequest("fake", "please fail midway"))
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	var content strings.Builder
	var streamErr error
	for chunk, err := range stream.Chunks() {
		if err != nil {
			streamErr = err
			break
		}
		content.WriteString(chunk.GetContent())
	}
	if content.String() != "abcdefgh" {
		t.Errorf("content before the failure = %q, want the two chunks %q", content.String(), "abcdefgh")
	}
	perr := asPorticoError(t, streamErr)
	if perr.Code != codes.Unavailable || perr.Reason != "ERROR_REASON_UPSTREAM_UNAVAILABLE" {
		t.Errorf("error = %v, want UNAVAILABLE / ERROR_REASON_UPSTREAM_UNAVAILABLE", perr)
	}
	if perr.RetrySafe() || perr.Retryable() {
		t.Error("a failure after the first chunk must not be retry-safe: the caller already has part of an answer")
	}
	if _, err := stream.Response(); !errors.Is(err, perr) {
		t.Errorf("Response after the failure = %v, want the same error", err)
	}
}

func TestCancellingAStreamStopsItPromptly(t *testing.T) {
	client := newClient(t)
	// The slow provider streams one character every 50 ms: this answer would take
	// about 20 s to finish.
	prompt := strings.Repeat("slow stream ", 34)
	ctx, cancel := context.WithCancel(callContext(t))
	defer cancel()
	stream, err := client.Stream(ctx, chatRequest("slow", prompt))
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	var received strings.Builder
	for received.Len() < 3 {
		chunk, err := stream.Recv()
		if err != nil {
			t.Fatalf("Recv before cancelling: %v", err)
		}
		received.WriteString(chunk.GetContent())
	}
	if received.String() != prompt[:received.Len()] {
		t.Errorf("received %q, want the start of the prompt", received.String())
	}

	cancelledAt := time.Now()
	cancel()
	_, err = stream.Recv()
	for err == nil { // chunks already in flight may still arrive
		_, err = stream.Recv()
	}
	if elapsed := time.Since(cancelledAt); elapsed > 2*time.Second {
		t.Errorf("the stream ended %s after cancelling; want well under 2 s", elapsed)
	}
	perr := asPorticoError(t, err)
	if perr.Code != codes.Canceled || !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want CANCELED matching context.Canceled", err)
	}
	if stream.Final() != nil {
		t.Error("a cancelled stream has a final chunk")
	}

	// The gateway and the connection are still fine afterwards.
	if _, err := client.Chat(callContext(t), chatRequest("fake", "still there?")); err != nil {
		t.Errorf("Chat after a cancelled stream: %v", err)
	}
}

func TestBreakingOutOfChunksClosesTheStream(t *testing.T) {
	client := newClient(t)
	stream, err := client.Stream(callContext(t), chatRequest("slow", strings.Repeat("x", 400)))
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	for _, err := range stream.Chunks() {
		if err != nil {
			t.Fatalf("stream failed: %v", err)
		}
		break
	}
	started := time.Now()
	_, err = stream.Recv()
	for err == nil {
		_, err = stream.Recv()
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Recv after break = %v, want CANCELED", err)
	}
	if elapsed := time.Since(started); elapsed > 2*time.Second {
		t.Errorf("the stream took %s to end after break", elapsed)
	}
}

func TestEmbedReturnsOneUnitVectorPerInputInOrder(t *testing.T) {
	client := newClient(t)
	inputs := []string{"first text", "second text", "first text"}
	resp, err := client.Embed(callContext(t), &porticov1.EmbedRequest{Provider: "fake", Inputs: inputs})
	if err != nil {
		t.Fatalf("Embed: %v", err)
	}
	embeddings := resp.GetEmbeddings()
	if len(embeddings) != len(inputs) {
		t.Fatalf("got %d embeddings for %d inputs", len(embeddings), len(inputs))
	}
	for i, e := range embeddings {
		if int(e.GetIndex()) != i {
			t.Errorf("embedding %d has index %d", i, e.GetIndex())
		}
		if len(e.GetValues()) != 16 {
			t.Errorf("embedding %d has %d dimensions, want 16", i, len(e.GetValues()))
		}
		var norm float64
		for _, v := range e.GetValues() {
			norm += float64(v) * float64(v)
		}
		if math.Abs(math.Sqrt(norm)-1) > 1e-4 {
			t.Errorf("embedding %d has norm %f, want 1", i, math.Sqrt(norm))
		}
	}
	// The fake provider's vectors are a hash of the text: equal texts, equal vectors.
	if !equalVectors(embeddings[0].GetValues(), embeddings[2].GetValues()) {
		t.Error("the same text got two different vectors")
	}
	if equalVectors(embeddings[0].GetValues(), embeddings[1].GetValues()) {
		t.Error("two different texts got the same vector")
	}
	if resp.GetProvider() != "fake" || resp.GetModel() != "fake-embed" {
		t.Errorf("answered by %q/%q, want fake/fake-embed", resp.GetProvider(), resp.GetModel())
	}
}

func equalVectors(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestInvalidRequestNamesTheField(t *testing.T) {
	client := newClient(t)
	req := chatRequest("fake", "hi")
	temperature := 5.0
	req.Temperature = &temperature
	_, err := client.Chat(callContext(t), req)
	perr := asPorticoError(t, err)
	if perr.Code != codes.InvalidArgument {
		t.Errorf("code = %v, want InvalidArgument", perr.Code)
	}
	if perr.Reason != "ERROR_REASON_INVALID_REQUEST" || perr.Domain != portico.ErrorDomain {
		t.Errorf("ErrorInfo = %q in %q, want ERROR_REASON_INVALID_REQUEST in %q", perr.Reason, perr.Domain, portico.ErrorDomain)
	}
	if perr.ReasonCode() != porticov1.ErrorReason_ERROR_REASON_INVALID_REQUEST {
		t.Errorf("ReasonCode() = %v", perr.ReasonCode())
	}
	if len(perr.FieldViolations) != 1 || perr.FieldViolations[0].Field != "temperature" {
		t.Fatalf("field violations = %+v, want exactly one on temperature", perr.FieldViolations)
	}
	if desc, ok := perr.FieldViolation("temperature"); !ok || desc == "" {
		t.Errorf("FieldViolation(temperature) = %q, %v; want a description", desc, ok)
	}
	if perr.Retryable() || perr.RetryAfter != 0 {
		t.Errorf("an invalid request is retryable (%v, %s)", perr.Retryable(), perr.RetryAfter)
	}
	// The decoded error is still a gRPC error to code that only knows gRPC.
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("status.Code(err) = %v", status.Code(err))
	}
}

func TestRequestWithoutMessagesNamesMessages(t *testing.T) {
	client := newClient(t)
	_, err := client.Chat(callContext(t), &porticov1.ChatRequest{Provider: "fake"})
	perr := asPorticoError(t, err)
	if _, ok := perr.FieldViolation("messages"); perr.Code != codes.InvalidArgument || !ok {
		t.Errorf("error = %v with violations %+v, want INVALID_ARGUMENT on messages", perr, perr.FieldViolations)
	}
}

func TestUnknownProviderIsNotFound(t *testing.T) {
	client := newClient(t)
	_, err := client.Chat(callContext(t), chatRequest("no-such-provider", "hi"))
	perr := asPorticoError(t, err)
	if perr.Code != codes.NotFound || perr.Reason != "ERROR_REASON_UNKNOWN_PROVIDER" {
		t.Errorf("error = %v, want NOT_FOUND / ERROR_REASON_UNKNOWN_PROVIDER", perr)
	}
}

func TestRateLimitCarriesRetryInfoAndMetadata(t *testing.T) {
	// Retries off: the rule answers every attempt with the same 2.5 s hint.
	client := newClient(t, portico.WithoutRetries())
	_, err := client.Chat(callContext(t), chatRequest("fake", "rate limit me"))
	perr := asPorticoError(t, err)
	if perr.Code != codes.ResourceExhausted || perr.Reason != "ERROR_REASON_UPSTREAM_RATE_LIMITED" {
		t.Errorf("error = %v, want RESOURCE_EXHAUSTED / ERROR_REASON_UPSTREAM_RATE_LIMITED", perr)
	}
	if perr.RetryAfter != 2500*time.Millisecond {
		t.Errorf("RetryAfter = %s, want 2.5s", perr.RetryAfter)
	}
	if !perr.Retryable() {
		t.Error("an error with RetryInfo should be retryable")
	}
	if perr.Metadata["provider"] != "fake" {
		t.Errorf("metadata = %v, want provider=fake", perr.Metadata)
	}
}

func TestDefaultTimeoutBoundsACallWithoutDeadline(t *testing.T) {
	client := newClient(t, portico.WithDefaultTimeout(300*time.Millisecond))
	started := time.Now()
	// The rule for this prompt waits 30 s before answering.
	_, err := client.Chat(context.Background(), chatRequest("fake", "think slowly"))
	elapsed := time.Since(started)
	perr := asPorticoError(t, err)
	if perr.Code != codes.DeadlineExceeded || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error = %v, want DEADLINE_EXCEEDED", err)
	}
	if elapsed > 5*time.Second {
		t.Errorf("the call took %s; the 300 ms default timeout did not apply", elapsed)
	}
}

func TestUnreachableGatewayIsUnavailable(t *testing.T) {
	// A port that was free a moment ago and has nothing listening now.
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	address := listener.Addr().String()
	_ = listener.Close()

	client, err := portico.Dial(address)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer client.Close()
	_, err = client.Chat(callContext(t), chatRequest("fake", "anyone?"))
	perr := asPorticoError(t, err)
	// Without the gateway's details nobody can tell whether the call reached it.
	if perr.Code != codes.Unavailable || perr.Reason != "" || perr.RetrySafe() {
		t.Errorf("error = %v (reason %q), want UNAVAILABLE with no reason, not marked retry-safe", perr, perr.Reason)
	}
}

// listProviderNames calls ListProviders and returns the answer and the providers' names.
func listProviderNames(t *testing.T, client *portico.Client) (*porticov1.ListProvidersResponse, []string) {
	t.Helper()
	providers, err := client.ListProviders(callContext(t))
	if err != nil {
		t.Fatalf("ListProviders: %v", err)
	}
	var names []string
	for _, p := range providers.GetProviders() {
		names = append(names, p.GetName())
	}
	return providers, names
}

func TestListProvidersFollowsEveryPage(t *testing.T) {
	// More providers than the gateway's default page of 50.
	var config strings.Builder
	config.WriteString("server: {health_probe_interval: 0, shutdown_grace: 1}\nproviders:\n")
	var want []string
	for i := range 120 {
		name := fmt.Sprintf("p%03d", i)
		want = append(want, name)
		fmt.Fprintf(&config, "  - {name: %s, kind: fake}\n", name)
	}
	gw, err := startGateway(config.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gw.stop() })
	client, err := portico.Dial(gw.address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })

	providers, names := listProviderNames(t, client)
	if strings.Join(names, ",") != strings.Join(want, ",") || providers.GetNextPageToken() != "" {
		t.Errorf("providers = %v (next page %q), want all 120 in configuration order", names, providers.GetNextPageToken())
	}
}

func TestListProvidersAndCapabilities(t *testing.T) {
	client := newClient(t)
	_, names := listProviderNames(t, client)
	if strings.Join(names, ",") != "fake,slow" {
		t.Errorf("providers = %v, want [fake slow] in configuration order", names)
	}
	caps, err := client.GetCapabilities(callContext(t), &porticov1.GetCapabilitiesRequest{Provider: "fake"})
	if err != nil {
		t.Fatalf("GetCapabilities: %v", err)
	}
	if c := caps.GetCapabilities(); !c.GetSupportsStreaming() || !c.GetSupportsEmbeddings() || c.GetModel() != "fake-chat" {
		t.Errorf("capabilities = %v", c)
	}
	count, err := client.CountTokens(callContext(t), &porticov1.CountTokensRequest{
		Provider: "fake", Messages: []*porticov1.Message{portico.UserMessage("count these words please")},
	})
	if err != nil {
		t.Fatalf("CountTokens: %v", err)
	}
	if count.GetTokenCount() <= 0 {
		t.Errorf("token count = %d", count.GetTokenCount())
	}
}
