package portico_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The integration tests run against a real Portico gateway: the Python server, started
// as a subprocess on the fake provider, exactly as an operator would start it.

const (
	startTimeout = 30 * time.Second
	stopTimeout  = 15 * time.Second
	listenPrefix = "portico: listening on "
)

// gatewayConfig serves every test in the package. The fake provider answers from
// rules keyed on the prompt, so tests share one gateway without sharing state.
const gatewayConfig = `
server: {health_probe_interval: 0, shutdown_grace: 1}
providers:
  - name: fake
    kind: fake
    retry: {enabled: false}
    breaker: {enabled: false}
    models: [fake-chat, fake-embed]
    default_model: fake-chat
    embedding_model: fake-embed
    options:
      chunk_size: 4
      embedding_dimensions: 16
      rules:
        - when_contains: "weather"
          tool_calls: [{name: get_weather, arguments: '{"city":"Paris"}'}]
        - when_contains: "rate limit me"
          error: {reason: UPSTREAM_RATE_LIMITED, message: "slow down", retry_after: 2.5}
        - when_contains: "fail midway"
          content: "abcdefghijklmnop"
          error: {reason: UPSTREAM_UNAVAILABLE, message: "upstream went away", after_chunks: 2}
        - when_contains: "fail over please"
          content: "one two three four five six"
          failover: {after_chunks: 3, provider: backup, model: small, then: {content: "the backup answer"}}
          attempts:
            - {provider: primary, model: big, outcome: error, status: UNAVAILABLE, reason: ERROR_REASON_UPSTREAM_UNAVAILABLE, duration_ms: 41.5}
            - {provider: backup, model: small, duration_ms: 120.25, wait_ms: 500}
          overhead_ms: 3
        - when_contains: "trace my failure"
          error: {reason: UPSTREAM_BAD_REQUEST, message: "refused"}
          attempts: [{provider: fake, model: fake-chat, outcome: error, status: INVALID_ARGUMENT, reason: ERROR_REASON_UPSTREAM_BAD_REQUEST, duration_ms: 2}]
          overhead_ms: 0.5
        - when_contains: "trace me"
          content: "traced"
          attempts: [{provider: fake, model: fake-chat, duration_ms: 7.5, wait_ms: 250}]
          overhead_ms: 1.25
        - when_contains: "think slowly"
          content: "late"
          delay: 30
  - name: slow
    kind: fake
    retry: {enabled: false}
    breaker: {enabled: false}
    models: [slow-chat]
    default_model: slow-chat
    options:
      chunk_size: 1
      chunk_delay: 0.05
`

// gatewayAddress is where the package's gateway listens, set by TestMain.
var gatewayAddress string

func TestMain(m *testing.M) {
	os.Exit(runWithGateway(m))
}

func runWithGateway(m *testing.M) int {
	gw, err := startGateway(gatewayConfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot start the Portico gateway for the integration tests:", err)
		return 1
	}
	defer func() {
		if err := gw.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the gateway:", err)
		}
	}()
	gatewayAddress = gw.address
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "--- gateway log ---\n%s--- end of gateway log ---\n", gw.logs.String())
	}
	return code
}

type gatewayProcess struct {
	cmd     *exec.Cmd
	address string
	logs    *lockedBuffer
	exited  chan struct{}
	waitErr error
}

// portico returns the gateway executable: $PORTICO_BIN, else the repository's venv.
func porticoBinary() (string, error) {
	if bin := os.Getenv("PORTICO_BIN"); bin != "" {
		return bin, nil
	}
	// The test runs in clients/go/portico; the repository root is three levels up.
	bin, err := filepath.Abs(filepath.Join("..", "..", "..", ".venv", "bin", "portico"))
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("%s not found: set PORTICO_BIN or run scripts/setup-python.sh dev", bin)
	}
	return bin, nil
}

// startGateway runs `portico serve` with config on an ephemeral loopback port and
// returns once it has printed the address it accepts calls on.
func startGateway(config string) (*gatewayProcess, error) {
	bin, err := porticoBinary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "portico-go-test-")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "portico.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		return nil, err
	}
	gw := &gatewayProcess{logs: &lockedBuffer{}, exited: make(chan struct{})}
	gw.cmd = exec.Command(bin, "serve", "--config", path, "--address", "127.0.0.1:0", "--workers", "1")
	// The default vector store keeps its files under the data directory: the test's own.
	gw.cmd.Env = append(os.Environ(), "PORTICO_DATA_DIR="+dir)
	gw.cmd.Stderr = gw.logs
	stdout, err := gw.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	killWithParent(gw.cmd)
	if err := gw.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}

	listening := make(chan string, 1)
	go func() {
		// Keep reading to the end: a gateway whose stdout pipe fills up would block.
		scanner := bufio.NewScanner(stdout)
		for scanner.Scan() {
			line := scanner.Text()
			if addr, ok := strings.CutPrefix(line, listenPrefix); ok {
				select {
				case listening <- strings.TrimSpace(addr):
				default:
				}
			}
			gw.logs.WriteString(line + "\n")
		}
		gw.waitErr = gw.cmd.Wait()
		close(gw.exited)
		_ = os.RemoveAll(dir)
	}()

	select {
	case gw.address = <-listening:
		return gw, nil
	case <-gw.exited:
		return nil, fmt.Errorf("the gateway exited before listening (%v):\n%s", gw.waitErr, gw.logs.String())
	case <-time.After(startTimeout):
		_ = gw.cmd.Process.Kill()
		<-gw.exited
		return nil, fmt.Errorf("the gateway did not listen within %s:\n%s", startTimeout, gw.logs.String())
	}
}

// stop sends SIGTERM, the operator's way to stop the gateway, and kills it if it has
// not exited within stopTimeout.
func (gw *gatewayProcess) stop() error {
	if err := gw.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-gw.exited:
		return gw.waitErr
	case <-time.After(stopTimeout):
		_ = gw.cmd.Process.Kill()
		<-gw.exited
		return fmt.Errorf("the gateway ignored SIGTERM for %s and was killed", stopTimeout)
	}
}

// lockedBuffer collects the gateway's output from two goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) WriteString(s string) {
	_, _ = b.Write([]byte(s))
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
