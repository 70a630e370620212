package e2e

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cairn-mirror/cairn/internal/procs"
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

// proc is a long-running child process (a registry, cairn, containerd):
// internal/procs, with the names this package's tests use.
type proc struct {
	*procs.Proc
	log *procs.LogBuffer
}

// startProc starts a process with stdout and stderr in logPath. The caller
// registers stop with t.Cleanup.
func startProc(name, logPath string, argv ...string) (*proc, error) {
	p, err := procs.Start(name, logPath, argv...)
	if err != nil {
		return nil, err
	}
	return &proc{Proc: p, log: p.Log}, nil
}

func (p *proc) exited() bool { return p.Exited() }

// stop sends SIGTERM, then SIGKILL, and waits; safe to call twice.
func (p *proc) stop() error { return p.Stop() }

// waitReady polls ready until it returns nil, the process exits, or
// timeout passes.
func (p *proc) waitReady(timeout time.Duration, ready func() error) error {
	return p.WaitReady(timeout, ready)
}

// errAddrInUse marks a start that lost its port to another process.
var errAddrInUse = procs.ErrAddrInUse

// freePort returns a loopback port that was free a moment ago. Starters
// retry with another one when it was taken in between.
func freePort(t *testing.T) int {
	t.Helper()
	port, err := procs.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// withPortRetry calls start up to three times while it reports
// errAddrInUse.
func withPortRetry[T any](t *testing.T, start func() (T, error)) T {
	t.Helper()
	v, err := procs.WithPortRetry(start)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// readyErr is err: WaitReady already says when the port was taken.
func readyErr(_ *proc, err error) error { return err }

// run runs a short command with a bounded time and returns its combined
// output.
func run(ctx context.Context, argv ...string) (string, error) {
	return procs.Run(ctx, cmdTimeout, argv...)
}
