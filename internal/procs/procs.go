// Package procs runs the long-lived child processes that the end-to-end
// tests and the benchmark harness put around cairn: registries, containerd,
// cairn itself. Every wait is bounded; output goes to a file and memory.
package procs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// StopTimeout is how long Stop waits after SIGTERM before SIGKILL.
const StopTimeout = 15 * time.Second

// LogBuffer keeps a process's output in memory (to parse) and in a file (to
// read after a failure). It is safe for concurrent use. One made by
// StartQuiet keeps nothing in memory: the process writes the file itself,
// and String reads it back.
type LogBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	file *os.File
	path string // set for a file the process writes itself
}

// NewLogBuffer creates (truncates) path.
func NewLogBuffer(path string) (*LogBuffer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &LogBuffer{file: f}, nil
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	_, _ = l.file.Write(p)
	return len(p), nil
}

// String is everything written so far.
func (l *LogBuffer) String() string {
	if l.path != "" {
		b, _ := os.ReadFile(l.path)
		return string(b)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Len is a mark: String()[mark:] is what was written after it.
func (l *LogBuffer) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Len()
}

// Tail is the last n lines, for error messages.
func (l *LogBuffer) Tail(n int) string {
	lines := strings.Split(strings.TrimRight(l.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Proc is a running child process.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	Log  *LogBuffer
	done chan struct{} // closed at exit, after err is set
	err  error
	once sync.Once
}

// Start runs argv with stdout and stderr in logPath, and in memory.
func Start(name, logPath string, argv ...string) (*Proc, error) {
	return start(name, logPath, false, argv)
}

// StartQuiet is Start with the process writing logPath itself: its output
// costs this process nothing (for servers under load in a benchmark).
func StartQuiet(name, logPath string, argv ...string) (*Proc, error) {
	return start(name, logPath, true, argv)
}

func start(name, logPath string, quiet bool, argv []string) (*Proc, error) {
	log, err := NewLogBuffer(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	if quiet {
		log.path = logPath
		cmd.Stdout, cmd.Stderr = log.file, log.file
	}
	// A backstop when the parent dies without cleaning up: the kernel kills
	// the child when the thread that started it exits.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = log.file.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, Cmd: cmd, Log: log, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = log.file.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is the exit error once Exited is true.
func (p *Proc) Err() error {
	<-p.done
	return p.err
}

// Stop sends SIGTERM, then SIGKILL after StopTimeout, and waits. It returns
// the exit error (nil for a clean exit) and is safe to call twice.
func (p *Proc) Stop() error {
	p.once.Do(func() {
		if p.Exited() {
			return
		}
		_ = p.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(StopTimeout):
			_ = p.Cmd.Process.Kill()
			<-p.done
		}
	})
	<-p.done
	return p.err
}

// WaitReady polls ready every 50 ms until it returns nil, the process
// exits, or timeout passes. A process that exited saying its address was
// in use gives an error wrapping ErrAddrInUse.
func (p *Proc) WaitReady(timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		if p.Exited() {
			if strings.Contains(p.Log.String(), "address already in use") {
				return fmt.Errorf("%s: %w", p.Name, ErrAddrInUse)
			}
			return fmt.Errorf("%s exited before it was ready (%v); last output:\n%s", p.Name, p.err, p.Log.Tail(20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %w; last output:\n%s", p.Name, timeout, err, p.Log.Tail(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ErrAddrInUse marks a start that lost its port to another process.
var ErrAddrInUse = errors.New("address already in use")

// FreePort is a loopback port that was free a moment ago; starters retry
// with another when WaitReady says ErrAddrInUse.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	return port, l.Close()
}

// FreeAddr is "127.0.0.1:PORT" with a FreePort.
func FreeAddr() (string, error) {
	port, err := FreePort()
	if err != nil {
		return "", err
	}
	return "127.0.0.1:" + strconv.Itoa(port), nil
}

// WithPortRetry calls start up to three times while it fails with
// ErrAddrInUse.
func WithPortRetry[T any](start func() (T, error)) (T, error) {
	var (
		v   T
		err error
	)
	for range 3 {
		v, err = start()
		if !errors.Is(err, ErrAddrInUse) {
			return v, err
		}
	}
	return v, err
}

// Run runs a short command, bounded by timeout, and returns its combined
// output; the error carries the output too.
func Run(ctx context.Context, timeout time.Duration, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out), nil
}
