package portico

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	porticov1 "portico.dev/clients/go/gen/portico/v1"
)

// maxResponseBytes lifts gRPC-Go's 4 MiB default for received messages: a batch of
// embeddings easily outgrows it, and the gateway sends messages up to 32 MiB with its
// default configuration.
const maxResponseBytes = 32 << 20

// Client talks to one Portico gateway. It is safe for concurrent use; create one and
// share it, since it holds one HTTP/2 connection.
type Client struct {
	rpc      porticov1.LLMServiceClient
	vectors  porticov1.VectorServiceClient
	conn     *grpc.ClientConn // nil when the caller owns the connection (NewClient)
	settings settings
}

// Dial creates a client for the gateway at addr ("host:port", or any gRPC target such
// as "dns:///portico.internal:50051"). It connects lazily, on the first call, so an
// unreachable gateway shows up as an UNAVAILABLE *Error from that call.
func Dial(addr string, opts ...Option) (*Client, error) {
	s := collect(opts)
	creds, err := s.transportCredentials()
	if err != nil {
		return nil, err
	}
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	dialOptions := append([]grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxResponseBytes)),
	}, s.dialOptions...)
	conn, err := grpc.NewClient(addr, dialOptions...)
	if err != nil {
		return nil, err
	}
	return &Client{rpc: porticov1.NewLLMServiceClient(conn), vectors: porticov1.NewVectorServiceClient(conn), conn: conn, settings: s}, nil
}

// NewClient wraps a connection the caller made and keeps owning: Close leaves it open.
// The transport options (WithTLS, WithClientCertificate, WithTLSConfig,
// WithTransportCredentials, WithDialOptions) do not apply here; WithAPIKey does.
func NewClient(conn grpc.ClientConnInterface, opts ...Option) *Client {
	return &Client{rpc: porticov1.NewLLMServiceClient(conn), vectors: porticov1.NewVectorServiceClient(conn), settings: collect(opts)}
}

// Close closes the connection Dial made. Calls in flight fail with CANCELED.
func (c *Client) Close() error {
	if c.conn == nil {
		return nil
	}
	return c.conn.Close()
}

// Service returns the generated client, for calls made without this package's
// defaults and error decoding.
func (c *Client) Service() porticov1.LLMServiceClient { return c.rpc }

// Chat generates a complete answer. Like every call of a Client, it is made again
// (see RetryPolicy) only when the gateway says no generation started. Pass
// CaptureTrace (to this or any other call) to read the gateway's attempt trace; an
// *Error carries its own.
func (c *Client) Chat(ctx context.Context, req *porticov1.ChatRequest, opts ...grpc.CallOption) (*porticov1.CompletionResponse, error) {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	return retryUnary(ctx, c.settings.retryPolicy(), opts, func(ctx context.Context, opts []grpc.CallOption) (*porticov1.CompletionResponse, error) {
		return c.rpc.Chat(ctx, req, opts...)
	})
}

// Embed embeds a batch of texts; the vectors come back in input order.
func (c *Client) Embed(ctx context.Context, req *porticov1.EmbedRequest, opts ...grpc.CallOption) (*porticov1.EmbedResponse, error) {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	return retryUnary(ctx, c.settings.retryPolicy(), opts, func(ctx context.Context, opts []grpc.CallOption) (*porticov1.EmbedResponse, error) {
		return c.rpc.Embed(ctx, req, opts...)
	})
}

// CountTokens counts the tokens a chat request would use.
func (c *Client) CountTokens(ctx context.Context, req *porticov1.CountTokensRequest, opts ...grpc.CallOption) (*porticov1.CountTokensResponse, error) {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	return retryUnary(ctx, c.settings.retryPolicy(), opts, func(ctx context.Context, opts []grpc.CallOption) (*porticov1.CountTokensResponse, error) {
		return c.rpc.CountTokens(ctx, req, opts...)
	})
}

// GetCapabilities tells what a provider and model can do.
func (c *Client) GetCapabilities(ctx context.Context, req *porticov1.GetCapabilitiesRequest, opts ...grpc.CallOption) (*porticov1.GetCapabilitiesResponse, error) {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	return retryUnary(ctx, c.settings.retryPolicy(), opts, func(ctx context.Context, opts []grpc.CallOption) (*porticov1.GetCapabilitiesResponse, error) {
		return c.rpc.GetCapabilities(ctx, req, opts...)
	})
}

// ListProviders lists every configured provider with its models and health, in
// configuration order: it follows the gateway's pages, so the response holds them all
// and no next page token. The call's deadline covers every page.
func (c *Client) ListProviders(ctx context.Context, opts ...grpc.CallOption) (*porticov1.ListProvidersResponse, error) {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	all := &porticov1.ListProvidersResponse{}
	req := &porticov1.ListProvidersRequest{}
	for {
		page, err := retryUnary(ctx, c.settings.retryPolicy(), opts, func(ctx context.Context, opts []grpc.CallOption) (*porticov1.ListProvidersResponse, error) {
			return c.rpc.ListProviders(ctx, req, opts...)
		})
		if err != nil {
			return nil, err
		}
		all.Providers = append(all.Providers, page.GetProviders()...)
		if page.GetNextPageToken() == "" {
			return all, nil
		}
		req = &porticov1.ListProvidersRequest{PageToken: page.GetNextPageToken()}
	}
}

// Stream starts a streamed answer; read it with Recv or Chunks, and Close it if you
// stop before the end. Errors the gateway sends come from Recv, not from Stream. A
// retry-safe failure before the first chunk starts the call again; after it, never.
func (c *Client) Stream(ctx context.Context, req *porticov1.ChatRequest, opts ...grpc.CallOption) (*ChatStream, error) {
	ctx, cancel := c.callContext(ctx)
	start := func() (grpc.ServerStreamingClient[porticov1.StreamChunk], error) {
		return c.rpc.StreamChat(ctx, req, opts...)
	}
	call, err := start()
	if err != nil {
		cancel()
		return nil, decodeError(err)
	}
	return &ChatStream{call: call, cancel: cancel, ctx: ctx, start: start, retry: c.settings.retryPolicy(), attempts: 1, traceInto: capturedTrace(opts)}, nil
}

// callContext applies the client's metadata and default deadline to one call. The
// returned cancel must run when the call is over, to release the deadline's timer.
func (c *Client) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if len(c.settings.metadata) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, c.settings.metadata...)
	}
	if _, has := ctx.Deadline(); !has && c.settings.defaultTimeout > 0 {
		return context.WithTimeout(ctx, c.settings.defaultTimeout)
	}
	return context.WithCancel(ctx)
}
