package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// binDir holds the cairn binary, built once per test binary run.
var (
	binDir    string
	buildOnce sync.Once
	buildBin  string
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cairn-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// cairnBinary builds ./cmd/cairn from the repository root (with -race when
// the tests run with -race) the first time it is called.
func cairnBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		// go test puts its own GOROOT/bin first in PATH (Go 1.19+).
		goBin, err := exec.LookPath("go")
		if err != nil {
			buildErr = err
			return
		}
		root, err := repoRoot(goBin)
		if err != nil {
			buildErr = err
			return
		}
		out := filepath.Join(binDir, "cairn")
		args := []string{"build", "-o", out}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "./cmd/cairn")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, goBin, args...)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, b)
			return
		}
		buildBin = out
	})
	if buildErr != nil {
		t.Fatalf("build cairn: %v", buildErr)
	}
	return buildBin
}

// repoRoot is the directory of go.mod, asked of the go command.
func repoRoot(goBin string) (string, error) {
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return filepath.Abs("..")
	}
	return filepath.Dir(gomod), nil
}

// cairnNode is one running cairn serve.
type cairnNode struct {
	bin, config string
	addr, admin string // 127.0.0.1:PORT of the OCI API and of the admin listener
	proc        *proc
}

// startCairn writes a config mirroring docker.io and ghcr.io from the two
// upstreams into dataDir and starts cairn on free ports.
func startCairn(t *testing.T, bin, dataDir string, dockerHub, ghcr *upstream) *cairnNode {
	t.Helper()
	return startCairnWith(t, bin, dataDir, fmt.Sprintf(`upstreams:
  - name: docker.io
    url: %s
    aliases: [index.docker.io, registry-1.docker.io]
    default: true
  - name: ghcr.io
    url: %s
`, dockerHub.url(), ghcr.url()))
}

// startCairnWith starts cairn on free ports with dataDir and the given
// upstreams section, after `cairn check-config` accepts the file.
func startCairnWith(t *testing.T, bin, dataDir, upstreams string) *cairnNode {
	t.Helper()
	dir := t.TempDir()
	node := withPortRetry(t, func() (*cairnNode, error) {
		n := &cairnNode{
			bin:    bin,
			config: filepath.Join(dir, "cairn.yaml"),
			addr:   fmt.Sprintf("127.0.0.1:%d", freePort(t)),
			admin:  fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		}
		cfg := fmt.Sprintf(`version: 1
listen: %q
admin_listen: %q
data_dir: %q
log: {level: info, format: json}
cache: {tag_ttl: 5m, serve_stale: true, fill_idle_timeout: 2m}
`, n.addr, n.admin, dataDir) + upstreams
		if err := os.WriteFile(n.config, []byte(cfg), 0o644); err != nil {
			return nil, err
		}
		if out, err := run(t.Context(), bin, "check-config", "-c", n.config); err != nil {
			return nil, fmt.Errorf("cairn check-config rejects the test's config: %w\n%s", err, out)
		}
		return n, n.start(t)
	})
	// Stops whichever process is current: start may run again (a restart).
	t.Cleanup(func() { _ = node.proc.stop() })
	return node
}

// start runs cairn serve with the node's config and waits for /readyz.
// Each start logs to a new file; the cleanup startCairn registered stops it.
func (n *cairnNode) start(t *testing.T) error {
	t.Helper()
	logPath := filepath.Join(filepath.Dir(n.config), fmt.Sprintf("cairn-%d.log", time.Now().UnixNano()))
	p, err := startProc("cairn", logPath, n.bin, "serve", "-c", n.config)
	if err != nil {
		return err
	}
	err = p.waitReady(startTimeout, func() error { return httpOK("http://" + n.admin + "/readyz") })
	if err := readyErr(p, err); err != nil {
		_ = p.stop()
		return err
	}
	n.proc = p
	t.Logf("cairn on %s (admin %s), log %s", n.addr, n.admin, logPath)
	return nil
}

// stop stops cairn and fails the test when it exited badly or its log
// shows a panic or a data race.
func (n *cairnNode) stop(t *testing.T) {
	t.Helper()
	err := n.proc.stop()
	log := n.proc.log.String()
	for _, bad := range []string{"WARNING: DATA RACE", "panic:", "fatal error:"} {
		if strings.Contains(log, bad) {
			t.Errorf("CAIRN BUG: cairn's output contains %q:\n%s", bad, log)
		}
	}
	if err != nil {
		t.Errorf("CAIRN BUG: cairn did not exit cleanly on SIGTERM: %v\n%s", err, n.proc.log.Tail(30))
	}
}

// cairnRequest is one access line of cairn's JSON log.
type cairnRequest struct {
	Msg    string `json:"msg"`
	Method string `json:"method"`
	Path   string `json:"path"`
	Status int    `json:"status"`
	Route  string `json:"route"`
	Repo   string `json:"repo"`
	Err    string `json:"err"`
}

// requests lists cairn's access lines logged after mark.
func (n *cairnNode) requests(mark int) []cairnRequest {
	var out []cairnRequest
	for _, line := range strings.Split(n.proc.log.String()[mark:], "\n") {
		var r cairnRequest
		if json.Unmarshal([]byte(line), &r) == nil && r.Msg == "request" {
			out = append(out, r)
		}
	}
	return out
}

// blobGETs counts successful blob GETs served by cairn after mark.
func (n *cairnNode) blobGETs(mark int) map[string]int {
	c := map[string]int{}
	for _, r := range n.requests(mark) {
		if m := blobPath.FindStringSubmatch(r.Path); m != nil && r.Method == "GET" && r.Status/100 == 2 {
			c[m[2]]++
		}
	}
	return c
}
