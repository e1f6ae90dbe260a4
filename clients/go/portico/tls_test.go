package portico_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"portico.dev/clients/go/portico"
)

// Throwaway certificates for these tests, made here with crypto/x509 and written as
// PEM files the way an operator hands them to a client: no key is committed.

type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	dir  string
}

func newAuthority(t *testing.T, name string) *authority {
	t.Helper()
	key := newKey(t)
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &authority{cert: cert, key: key, dir: t.TempDir()}
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// caFile writes the authority's certificate and returns its path.
func (a *authority) caFile(t *testing.T) string {
	t.Helper()
	return writePEM(t, filepath.Join(a.dir, "ca.pem"), "CERTIFICATE", a.cert.Raw)
}

// issue signs a certificate for usage (server: 127.0.0.1; client: subject only).
func (a *authority) issue(t *testing.T, subject pkix.Name, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key := newKey(t)
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber: serial,
		Subject:      subject,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	if usage == x509.ExtKeyUsageServerAuth {
		template.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, template, a.cert, &key.PublicKey, a.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// files writes a certificate and its key as PEM files and returns their paths.
func (a *authority) files(t *testing.T, name string, cert tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile = writePEM(t, filepath.Join(a.dir, name+".pem"), "CERTIFICATE", cert.Certificate[0])
	keyFile = writePEM(t, filepath.Join(a.dir, name+".key"), "PRIVATE KEY", keyDER)
	return certFile, keyFile
}

func writePEM(t *testing.T, path, kind string, der []byte) string {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func chatOver(t *testing.T, address string, opts ...portico.Option) error {
	t.Helper()
	client, err := portico.Dial(address, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	_, err = client.Chat(callContext(t), chatRequest("", "hi"))
	return err
}

func TestTLSTrustsTheCAFileItIsGiven(t *testing.T) {
	ca := newAuthority(t, "portico test CA")
	serverCert := ca.issue(t, pkix.Name{CommonName: "gateway"}, x509.ExtKeyUsageServerAuth)
	_, address := serve(t, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12})))

	if err := chatOver(t, address, portico.WithTLS(ca.caFile(t))); err != nil {
		t.Fatalf("Chat over TLS with the CA file: %v", err)
	}
	// The system's authorities do not know this CA, and plaintext is no TLS.
	for name, opts := range map[string][]portico.Option{
		"system roots": {portico.WithTLS("")},
		"plaintext":    nil,
	} {
		if perr := asPorticoError(t, chatOver(t, address, opts...)); perr.Code != codes.Unavailable {
			t.Errorf("%s: error = %v, want UNAVAILABLE", name, perr)
		}
	}
}

func TestMutualTLSPresentsTheClientCertificate(t *testing.T) {
	ca := newAuthority(t, "portico test CA")
	serverCert := ca.issue(t, pkix.Name{CommonName: "gateway"}, x509.ExtKeyUsageServerAuth)
	clients := x509.NewCertPool()
	clients.AddCert(ca.cert)
	service, address := serve(t, grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientCAs:    clients,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	})))
	caFile := ca.caFile(t)
	certFile, keyFile := ca.files(t, "billing", ca.issue(t, pkix.Name{CommonName: "billing", Organization: []string{"Acme"}}, x509.ExtKeyUsageClientAuth))

	if err := chatOver(t, address, portico.WithTLS(caFile), portico.WithClientCertificate(certFile, keyFile)); err != nil {
		t.Fatalf("Chat with a client certificate: %v", err)
	}
	if got := service.lastPeer(t); got != "CN=billing,O=Acme" {
		t.Errorf("the server verified %q, want CN=billing,O=Acme", got)
	}

	// Without a certificate, or with one from another authority, the handshake fails.
	other := newAuthority(t, "someone else's CA")
	strangerCert, strangerKey := other.files(t, "stranger", other.issue(t, pkix.Name{CommonName: "stranger"}, x509.ExtKeyUsageClientAuth))
	for name, opts := range map[string][]portico.Option{
		"no certificate":           {portico.WithTLS(caFile)},
		"another CA's certificate": {portico.WithTLS(caFile), portico.WithClientCertificate(strangerCert, strangerKey)},
	} {
		if perr := asPorticoError(t, chatOver(t, address, opts...)); perr.Code != codes.Unavailable {
			t.Errorf("%s: error = %v, want UNAVAILABLE", name, perr)
		}
	}
}

func TestTheAPIKeyIsSentAsABearerToken(t *testing.T) {
	service, address := serve(t)
	authorization := func() []string { return service.lastMetadata(t).Get("authorization") }

	t.Setenv(portico.APIKeyEnv, "key-from-env")
	if err := chatOver(t, address, portico.WithAPIKey("sk-portico-1")); err != nil {
		t.Fatal(err)
	}
	if got := authorization(); len(got) != 1 || got[0] != "Bearer sk-portico-1" {
		t.Errorf("authorization = %q, want the WithAPIKey key (over plaintext too)", got)
	}
	if err := chatOver(t, address); err != nil {
		t.Fatal(err)
	}
	if got := authorization(); len(got) != 1 || got[0] != "Bearer key-from-env" {
		t.Errorf("authorization = %q, want the key from %s", got, portico.APIKeyEnv)
	}
	if err := chatOver(t, address, portico.WithAPIKey("")); err != nil {
		t.Fatal(err)
	}
	if got := authorization(); len(got) != 0 {
		t.Errorf("authorization = %q, want none when WithAPIKey(\"\") overrides the environment", got)
	}

	// NewClient sends it on the caller's own connection as well.
	conn, err := grpc.NewClient(address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := portico.NewClient(conn, portico.WithAPIKey("sk-portico-2")).Chat(callContext(t), chatRequest("", "hi")); err != nil {
		t.Fatal(err)
	}
	if got := authorization(); len(got) != 1 || got[0] != "Bearer sk-portico-2" {
		t.Errorf("authorization = %q on the caller's connection", got)
	}
}

func TestTransportOptionsThatCannotWorkFailAtDial(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		opts []portico.Option
		want string
	}{
		"missing CA file":        {[]portico.Option{portico.WithTLS(filepath.Join(dir, "missing.pem"))}, "missing.pem"},
		"CA file without PEM":    {[]portico.Option{portico.WithTLS(notPEM)}, "holds no PEM certificate"},
		"missing client key":     {[]portico.Option{portico.WithClientCertificate(notPEM, filepath.Join(dir, "missing.key"))}, "client certificate"},
		"two kinds of transport": {[]portico.Option{portico.WithTLS(""), portico.WithTransportCredentials(insecure.NewCredentials())}, "cannot be combined"},
	}
	for name, c := range cases {
		client, err := portico.Dial("127.0.0.1:1", c.opts...)
		if err == nil {
			_ = client.Close()
			t.Errorf("%s: Dial succeeded", name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not say %q", name, err, c.want)
		}
	}
}
