package portico

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// APIKeyEnv is the environment variable a Client reads its caller key from when no
// WithAPIKey option gives one.
const APIKeyEnv = "PORTICO_API_KEY"

// Option configures a Client.
type Option func(*settings)

type settings struct {
	// Transport: used by Dial only; NewClient takes its connection as it is.
	creds       credentials.TransportCredentials
	tlsConfig   *tls.Config // WithTLSConfig; WithTLS and WithClientCertificate build one
	useTLS      bool
	caFile      string
	certFile    string
	keyFile     string
	dialOptions []grpc.DialOption

	// Per call: used by Dial and NewClient alike.
	apiKey         string
	apiKeySet      bool
	metadata       []string // key, value, key, value, ...
	defaultTimeout time.Duration
	retry          *RetryPolicy // nil: DefaultRetryPolicy
}

// WithAPIKey sends key as the caller key of every call, in the header
// "authorization: Bearer <key>", over TLS and plaintext alike. Without this option the
// key comes from the PORTICO_API_KEY environment variable, when it is set; an empty key
// sends none.
func WithAPIKey(key string) Option {
	return func(s *settings) { s.apiKey, s.apiKeySet = key, true }
}

// WithTLS makes Dial connect over TLS, trusting the PEM certificates in caFile (a
// private certificate authority), or the system's authorities when caFile is "".
// Without it (or WithClientCertificate) Dial uses plaintext, which suits a gateway on
// the same host or inside a service mesh.
func WithTLS(caFile string) Option {
	return func(s *settings) { s.useTLS, s.caFile = true, caFile }
}

// WithClientCertificate makes Dial present the PEM certificate and key in certFile and
// keyFile when the gateway asks for one (mutual TLS). It implies TLS; add WithTLS to
// trust a private certificate authority.
func WithClientCertificate(certFile, keyFile string) Option {
	return func(s *settings) { s.useTLS, s.certFile, s.keyFile = true, certFile, keyFile }
}

// WithTLSConfig makes Dial connect over TLS with this configuration, for what WithTLS
// and WithClientCertificate do not cover (a certificate callback, pinned ciphers). A
// CA file or client certificate given with them is added to a copy of it.
func WithTLSConfig(config *tls.Config) Option {
	return func(s *settings) { s.useTLS, s.tlsConfig = true, config }
}

// WithTransportCredentials makes Dial use these credentials (for example ALTS or
// credentials from a certificate-rotation library) instead of plaintext or TLS.
func WithTransportCredentials(creds credentials.TransportCredentials) Option {
	return func(s *settings) { s.creds = creds }
}

// WithMetadata adds a header sent with every call. Give it once per header. Metadata
// the caller puts on a call's context is sent as well.
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

func collect(opts []Option) settings {
	var s settings
	for _, opt := range opts {
		opt(&s)
	}
	if !s.apiKeySet {
		s.apiKey = os.Getenv(APIKeyEnv)
	}
	if s.apiKey != "" {
		s.metadata = append(s.metadata, "authorization", "Bearer "+s.apiKey)
	}
	return s
}

// transportCredentials returns what Dial connects with: the credentials given, TLS
// built from the options, or nil for plaintext. Errors name the file that failed.
func (s *settings) transportCredentials() (credentials.TransportCredentials, error) {
	if s.creds != nil {
		if s.useTLS {
			return nil, errors.New("portico: WithTransportCredentials cannot be combined with WithTLS, WithTLSConfig or WithClientCertificate")
		}
		return s.creds, nil
	}
	if !s.useTLS {
		return nil, nil
	}
	config := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.tlsConfig != nil {
		config = s.tlsConfig.Clone()
	}
	if s.caFile != "" {
		pem, err := os.ReadFile(s.caFile)
		if err != nil {
			return nil, fmt.Errorf("portico: reading the CA file: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("portico: the CA file %s holds no PEM certificate", s.caFile)
		}
		config.RootCAs = roots
	}
	if s.certFile != "" || s.keyFile != "" {
		cert, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
		if err != nil {
			return nil, fmt.Errorf("portico: loading the client certificate %s and key: %w", s.certFile, err)
		}
		config.Certificates = append(config.Certificates, cert)
	}
	return credentials.NewTLS(config), nil
}
