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

	dir, pki := t.TempDir(), filepath.Join(t.TempDir(), "pki")
	node := withPortRetry(t, func() (*cairnNode, error) {
		n := &cairnNode{
			bin:    bin,
			config: filepath.Join(dir, "cairn.yaml"),
			addr:   fmt.Sprintf("127.0.0.1:%d", freePort(t)),
			admin:  fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		}
		cfg := fmt.Sprintf("version: 1\nlisten: %q\nadmin_listen: %q\ndata_dir: %q\nlog: {level: info, format: json}\n"+
			"upstreams: [{name: docker.io, url: %q, default: true}]\n", n.addr, n.admin, t.TempDir(), dockerHub.url())
		if err := os.WriteFile(n.config, []byte(cfg), 0o644); err != nil {
			return nil, err
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
		t.Fatalf("no hosts.toml in cairn's output:\n%s", node.proc.log.tail(20))
	}
	if want := fmt.Sprintf(`[host."https://%s"]`, node.addr); !strings.Contains(hosts, want) {
		t.Fatalf("printed hosts.toml:\n%s\nwant %s", hosts, want)
	}
	// A closed port as the server: a failing mirror must not be hidden.
	hosts = regexp.MustCompile(`server = "[^"]*"`).ReplaceAllString(hosts, `server = "http://127.0.0.1:9"`)
	ctd := startContainerd(t)
	if err := os.MkdirAll(filepath.Join(ctd.hosts, "docker.io"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctd.hosts, "docker.io", "hosts.toml"), []byte(hosts), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ctd.pull(t, plainRef, mustDigest(t, fx.plain.Digest).String()); err != nil {
		t.Fatalf("pull over TLS: %v\ncairn log:\n%s", err, node.proc.log.tail(20))
	}
	if len(node.blobGETs(0)) == 0 {
		t.Errorf("containerd's pull fetched no blob through cairn:\n%s", node.proc.log.tail(20))
	}
	node.stop(t)
}
