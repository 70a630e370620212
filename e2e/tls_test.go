package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// printedHosts is the hosts.toml `cairn serve --tls-self-signed` prints.
var printedHosts = regexp.MustCompile(`(?s)server = "[^"]*"\n\n\[host\."https://[^"]+"\]\n.*?ca = "[^"]+"\n`)

// TestPullOverTLS: containerd pulls through cairn over HTTPS, trusting
// cairn's development CA with nothing but the hosts.toml lines that
// `cairn serve --tls-self-signed` printed.
func TestPullOverTLS(t *testing.T) {
	requireTools(t, "containerd", "ctr", "docker-registry")
	bin := cairnBinary(t)
	dockerHub := startUpstream(t, "docker.io")
	ghcr := startUpstream(t, "ghcr.io")
	fx := seed(t.Context(), t, dockerHub, ghcr)

	rest := fmt.Sprintf("upstreams: [{name: docker.io, url: %q, default: true}]\n", dockerHub.url())
	node, hosts := startTLSCairn(t, bin, rest)
	ctd := startContainerd(t)
	ctd.writeHostsFile(t, "docker.io", hosts)
	if err := ctd.pull(t, plainRef, mustDigest(t, fx.plain.Digest).String()); err != nil {
		t.Fatalf("pull over TLS: %v\ncairn log:\n%s", err, node.proc.log.Tail(20))
	}
	if len(node.blobGETs(0)) == 0 {
		t.Errorf("containerd's pull fetched no blob through cairn:\n%s", node.proc.log.Tail(20))
	}
	node.stop(t)
}

// startTLSCairn runs `cairn serve --tls-self-signed` with a config of the
// listeners, a fresh data dir and rest (the sections after them), checked
// by `cairn check-config` first. It returns the node and the hosts.toml
// cairn printed, its server swapped for a closed port so that a failing
// mirror is not hidden by a fallback.
func startTLSCairn(t *testing.T, bin, rest string) (*cairnNode, string) {
	t.Helper()
	dir, dataDir, pki := t.TempDir(), t.TempDir(), filepath.Join(t.TempDir(), "pki")
	node := withPortRetry(t, func() (*cairnNode, error) {
		n := &cairnNode{
			bin:    bin,
			config: filepath.Join(dir, "cairn.yaml"),
			addr:   fmt.Sprintf("127.0.0.1:%d", freePort(t)),
			admin:  fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		}
		cfg := fmt.Sprintf("version: 1\nlisten: %q\nadmin_listen: %q\ndata_dir: %q\nlog: {level: info, format: json}\n",
			n.addr, n.admin, dataDir) + rest
		if err := os.WriteFile(n.config, []byte(cfg), 0o644); err != nil {
			return nil, err
		}
		if out, err := run(t.Context(), bin, "check-config", "-c", n.config); err != nil {
			return nil, fmt.Errorf("cairn check-config rejects the test's config: %w\n%s", err, out)
		}
		logPath := filepath.Join(dir, fmt.Sprintf("cairn-%d.log", time.Now().UnixNano()))
		p, err := startProc("cairn", logPath, bin, "serve", "-c", n.config, "--tls-self-signed", pki)
		if err != nil {
			return nil, err
		}
		// The admin listener stays plain HTTP without tls.admin.
		err = p.waitReady(startTimeout, func() error { return httpOK("http://" + n.admin + "/readyz") })
		if err := readyErr(p, err); err != nil {
			_ = p.stop()
			return nil, err
		}
		n.proc = p
		return n, nil
	})
	t.Cleanup(func() { _ = node.proc.stop() })

	hosts := printedHosts.FindString(node.proc.log.String())
	if hosts == "" {
		t.Fatalf("no hosts.toml in cairn's output:\n%s", node.proc.log.Tail(20))
	}
	if want := fmt.Sprintf(`[host."https://%s"]`, node.addr); !strings.Contains(hosts, want) {
		t.Fatalf("printed hosts.toml:\n%s\nwant %s", hosts, want)
	}
	return node, closedServer.ReplaceAllString(hosts, `server = "http://127.0.0.1:9"`)
}

var closedServer = regexp.MustCompile(`server = "[^"]*"`)

// writeHostsFile writes hosts as the hosts.toml of namespace ns.
func (c *containerd) writeHostsFile(t *testing.T, ns, hosts string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(c.hosts, ns), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.hosts, ns, "hosts.toml"), []byte(hosts), 0o644); err != nil {
		t.Fatal(err)
	}
}
