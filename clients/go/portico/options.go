package portico

import (
	"crypto/tls"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// Option configures a Client.
type Option func(*settings)

type settings struct {
	// Transport: used by Dial only; NewClient takes its connection as it is.
	creds       credentials.TransportCredentials
	dialOptions []grpc.DialOption

	// Per call: used by Dial and NewClient alike.
	metadata       []string // key, value, key, value, ...
	defaultTimeout time.Duration
	retry          *RetryPolicy // nil: DefaultRetryPolicy
}

// WithTLS makes Dial connect over TLS. A nil config uses Go's defaults: the system's
// certificate authorities and the address's host name. Without it Dial uses plaintext,
// which suits a gateway on the same host or inside a service mesh.
func WithTLS(config *tls.Config) Option {
	return func(s *settings) {
		if config == nil {
			config = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		s.creds = credentials.NewTLS(config)
	}
}

// WithTransportCredentials makes Dial use these credentials (for example ALTS or
// credentials from a certificate-rotation library) instead of plaintext or WithTLS.
func WithTransportCredentials(creds credentials.TransportCredentials) Option {
	return func(s *settings) { s.creds = creds }
}

// WithMetadata adds a header sent with every call, for example an API key the
// gateway's authentication checks. Give it once per header. Metadata the caller puts on
// a call's context is sent as well.
func WithMetadata(key, value string) Option {
	return func(s *settings) { s.metadata = append(s.metadata, key, value) }
}

// WithDefaultTimeout sets the deadline of every call (a stream's included, counted
// from its start) whose context has none. A context's own deadline always wins.
func WithDefaultTimeout(d time.Duration) Option {
	return func(s *settings) { s.defaultTimeout = d }
}

// WithDialOptions passes extra options to grpc.NewClient, for what this package does
// not cover (interceptors, keepalive, a service config).
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(s *settings) { s.dialOptions = append(s.dialOptions, opts...) }
}
