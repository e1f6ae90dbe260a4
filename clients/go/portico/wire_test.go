package portico_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	porticov1 "portico.dev/clients/go/gen/portico/v1"
	"portico.dev/clients/go/portico"
)

// What the client puts on the wire (headers, TLS) is seen from the server's side, and
// a broken stream is something the gateway never sends, so these tests use a small
// LLMService of their own on loopback. Everything else is tested against the real
// gateway.

type recordingService struct {
	porticov1.UnimplementedLLMServiceServer
	mu       sync.Mutex
	metadata []metadata.MD
	// peers holds the subject of the verified client certificate of each call ("" if none).
	peers []string
	// streamed is what StreamChat sends before it ends the call with OK.
	streamed []*porticov1.StreamChunk
}

func (s *recordingService) StreamChat(_ *porticov1.ChatRequest, stream grpc.ServerStreamingServer[porticov1.StreamChunk]) error {
	for _, chunk := range s.streamed {
		if err := stream.Send(chunk); err != nil {
			return err
		}
	}
	return nil
}

func (s *recordingService) Chat(ctx context.Context, _ *porticov1.ChatRequest) (*porticov1.CompletionResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	subject := ""
	if p, ok := peer.FromContext(ctx); ok {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(info.State.VerifiedChains) > 0 {
			subject = info.State.VerifiedChains[0][0].Subject.String()
		}
	}
	s.mu.Lock()
	s.metadata = append(s.metadata, md)
	s.peers = append(s.peers, subject)
	s.mu.Unlock()
	return &porticov1.CompletionResponse{Content: "recorded"}, nil
}

func (s *recordingService) lastPeer(t *testing.T) string {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.peers) == 0 {
		t.Fatal("the server received no call")
	}
	return s.peers[len(s.peers)-1]
}

func (s *recordingService) lastMetadata(t *testing.T) metadata.MD {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.metadata) == 0 {
		t.Fatal("the server received no call")
	}
	return s.metadata[len(s.metadata)-1]
}

// serve starts the recording service on a loopback port and returns its address.
func serve(t *testing.T, opts ...grpc.ServerOption) (*recordingService, string) {
	t.Helper()
	return serveService(t, &recordingService{}, opts...)
}

func serveService(t *testing.T, service *recordingService, opts ...grpc.ServerOption) (*recordingService, string) {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := grpc.NewServer(opts...)
	porticov1.RegisterLLMServiceServer(server, service)
	go func() { _ = server.Serve(listener) }()
	t.Cleanup(server.Stop)
	return service, listener.Addr().String()
}

func TestMetadataIsSentWithEveryCall(t *testing.T) {
	service, address := serve(t)
	client, err := portico.Dial(address,
		portico.WithMetadata("x-api-key", "team-key"),
		portico.WithMetadata("x-team", "search"))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	ctx := metadata.AppendToOutgoingContext(callContext(t), "x-request-id", "r-42")
	if _, err := client.Chat(ctx, chatRequest("", "hi")); err != nil {
		t.Fatalf("Chat: %v", err)
	}
	md := service.lastMetadata(t)
	for key, want := range map[string]string{"x-api-key": "team-key", "x-team": "search", "x-request-id": "r-42"} {
		if got := md.Get(key); len(got) != 1 || got[0] != want {
			t.Errorf("header %s = %q, want [%q]", key, got, want)
		}
	}
}

func TestNewClientAppliesCallOptionsToTheCallersConnection(t *testing.T) {
	service, address := serve(t)
	conn, err := grpc.NewClient(address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := portico.NewClient(conn, portico.WithMetadata("x-api-key", "k"))
	if _, err := client.Chat(callContext(t), chatRequest("", "hi")); err != nil {
		t.Fatalf("Chat: %v", err)
	}
	if got := service.lastMetadata(t).Get("x-api-key"); len(got) != 1 || got[0] != "k" {
		t.Errorf("x-api-key = %q", got)
	}
	// The connection belongs to the caller: Close leaves it usable.
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := portico.NewClient(conn).Chat(callContext(t), chatRequest("", "again")); err != nil {
		t.Errorf("the caller's connection stopped working after Close: %v", err)
	}
}

func TestAStreamWithoutItsFinalChunkIsAnError(t *testing.T) {
	_, address := serveService(t, &recordingService{streamed: []*porticov1.StreamChunk{
		{Content: "cut "}, {Content: "short"},
	}})
	client, err := portico.Dial(address)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	stream, err := client.Stream(callContext(t), chatRequest("", "hi"))
	if err != nil {
		t.Fatal(err)
	}
	var content string
	for chunk, err := range stream.Chunks() {
		if err != nil {
			if !errors.Is(err, portico.ErrIncompleteStream) {
				t.Errorf("error = %v, want ErrIncompleteStream", err)
			}
			break
		}
		content += chunk.GetContent()
	}
	if content != "cut short" {
		t.Errorf("content = %q, want both chunks before the error", content)
	}
	if _, err := stream.Response(); !errors.Is(err, portico.ErrIncompleteStream) {
		t.Errorf("Response() error = %v, want ErrIncompleteStream", err)
	}
}

func TestAChunkAfterTheFinalOneIsAnError(t *testing.T) {
	_, address := serveService(t, &recordingService{streamed: []*porticov1.StreamChunk{
		{Content: "done"}, {Final: true}, {Content: "and more"},
	}})
	client, err := portico.Dial(address)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	stream, err := client.Stream(callContext(t), chatRequest("", "hi"))
	if err != nil {
		t.Fatal(err)
	}
	var chunks []*porticov1.StreamChunk
	var streamErr error
	for chunk, err := range stream.Chunks() {
		if err != nil {
			streamErr = err
			break
		}
		chunks = append(chunks, chunk)
	}
	if len(chunks) != 2 || !chunks[1].GetFinal() {
		t.Fatalf("chunks = %v, want the content chunk and the final one", chunks)
	}
	if perr := asPorticoError(t, streamErr); perr.Code != codes.Internal {
		t.Errorf("error = %v, want INTERNAL for a chunk after the final one", perr)
	}
}
