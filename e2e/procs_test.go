package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Bounds on every wait in this package.
const (
	startTimeout = 60 * time.Second  // a process answering after start
	stopTimeout  = 15 * time.Second  // SIGTERM, then SIGKILL
	cmdTimeout   = 120 * time.Second // one ctr / skopeo invocation
)

// requireTools skips the test when a tool is missing, or fails it with
// CI=true, where every tool must be installed.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	ci := os.Getenv("CI") == "true"
	if testing.Short() && !ci {
		t.Skip("end-to-end test: skipped with -short")
	}
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	switch {
	case len(missing) > 0 && ci:
		t.Fatalf("CI=true and %s not installed (apt-get install containerd skopeo docker-registry)", strings.Join(missing, ", "))
	case len(missing) > 0:
		t.Skipf("needs %s (apt-get install containerd skopeo docker-registry); with CI=true this fails", strings.Join(missing, ", "))
	case os.Geteuid() != 0 && ci:
		t.Fatal("CI=true and not root: containerd needs root")
	case os.Geteuid() != 0:
		t.Skip("needs root to run containerd; with CI=true this fails")
	}
}

// logBuffer collects a process's output in memory (to parse) and in a file
// (to read after a failure). Safe for concurrent use.
type logBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	file *os.File
}

func newLogBuffer(path string) (*logBuffer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &logBuffer{file: f}, nil
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	_, _ = l.file.Write(p)
	return len(p), nil
}

// String returns everything written so far.
func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Len is a mark: String()[mark:] is what was written after it.
func (l *logBuffer) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Len()
}

// tail returns the last n lines, for failure messages.
func (l *logBuffer) tail(n int) string {
	lines := strings.Split(strings.TrimRight(l.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// proc is a long-running child process (a registry, cairn, containerd).
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *logBuffer
	done chan struct{} // closed when the process has exited; err is set
	err  error
	once sync.Once
}

// startProc starts a process with stdout and stderr in logPath. The caller
// registers stop with t.Cleanup.
func startProc(name, logPath string, argv ...string) (*proc, error) {
	log, err := newLogBuffer(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	// A backstop if the test binary dies without cleanup (a go test timeout):
	// the kernel kills the child when the thread that started it exits.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: log, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = log.file.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, then SIGKILL after stopTimeout, and waits. It returns
// the process's exit error (nil for a clean exit). Safe to call twice.
func (p *proc) stop() error {
	p.once.Do(func() {
		if p.exited() {
			return
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(stopTimeout):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	<-p.done
	return p.err
}

// waitReady polls ready every 50 ms until it returns nil, the process
// exits, or timeout passes.
func (p *proc) waitReady(timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited before it was ready (%v); last output:\n%s", p.name, p.err, p.log.tail(20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %w; last output:\n%s", p.name, timeout, err, p.log.tail(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// errAddrInUse marks a start that lost its port to another process.
var errAddrInUse = errors.New("address already in use")

// freePort returns a loopback port that was free a moment ago. Starters
// retry with another one when it was taken in between.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	return port
}

// withPortRetry calls start up to three times while it reports
// errAddrInUse.
func withPortRetry[T any](t *testing.T, start func() (T, error)) T {
	t.Helper()
	var err error
	for range 3 {
		var v T
		v, err = start()
		if err == nil {
			return v
		}
		if !errors.Is(err, errAddrInUse) {
			break
		}
		t.Logf("retrying on another port: %v", err)
	}
	t.Fatal(err)
	var zero T
	return zero
}

// readyErr turns a failed readiness wait into errAddrInUse when the process
// said so.
func readyErr(p *proc, err error) error {
	if err != nil && p.exited() && strings.Contains(p.log.String(), "address already in use") {
		return fmt.Errorf("%s: %w", p.name, errAddrInUse)
	}
	return err
}

// run runs a short command with a bounded time and returns its combined
// output.
func run(ctx context.Context, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out), nil
}
