package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cairn-mirror/cairn/auth"
)

// TestPullWithContainerdTokenAuthTLS: containerd pulls a pushed image
// through cairn over HTTPS (trusting the --tls-self-signed CA with the
// printed hosts.toml) with the Docker token flow and alice's credentials:
// ctr's --user goes to the resolver, which follows cairn's Bearer
// challenge to cairn's own /token. Without --user the pull is refused,
// since anonymous clients may do nothing.
func TestPullWithContainerdTokenAuthTLS(t *testing.T) {
	requireTools(t, "skopeo", "containerd", "ctr")
	bin := cairnBinary(t)
	keyFile := filepath.Join(t.TempDir(), "token.key")
	if err := auth.GenerateKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	rest := strings.Replace(pushConfig(t, "[]"), "\nupstreams:", "\n  token:\n    key_file: "+keyFile+"\nupstreams:", 1)

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
		t.Fatalf("no hosts.toml in cairn's output:\n%s", node.proc.log.tail(20))
	}
	if want := fmt.Sprintf(`[host."https://%s"]`, node.addr); !strings.Contains(hosts, want) {
		t.Fatalf("printed hosts.toml:\n%s\nwant %s", hosts, want)
	}
	// A closed port as the server: a failing mirror must not be hidden.
	hosts = regexp.MustCompile(`server = "[^"]*"`).ReplaceAllString(hosts, `server = "http://127.0.0.1:9"`)

	sk := newSkopeo(t)
	src, img := ociLayout(t)
	digest := mustDigest(t, img.Digest).String()
	skopeoPush(t, sk, node, src, "docker://"+node.addr+"/"+pushedRef)

	ctd := startContainerd(t)
	if err := os.MkdirAll(filepath.Join(ctd.hosts, "registry.internal"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctd.hosts, "registry.internal", "hosts.toml"), []byte(hosts), 0o644); err != nil {
		t.Fatal(err)
	}

	pull := func(extra ...string) (string, error) {
		args := append([]string{"images", "pull", "--hosts-dir", ctd.hosts, "--snapshotter", ctd.snapshotter}, extra...)
		return ctd.ctr(t, append(args, pushedRef)...)
	}

	// Without credentials: refused, and nothing lands in containerd.
	if out, err := pull(); err == nil {
		t.Fatalf("CAIRN BUG: anonymous ctr pull with anonymous: [] succeeded:\n%s", out)
	} else if !strings.Contains(strings.ToLower(out), "401") && !strings.Contains(strings.ToLower(out), "unauthorized") {
		t.Errorf("anonymous pull refused, but ctr does not say 401 or unauthorized:\n%s", out)
	} else {
		t.Logf("anonymous pull refused: %s", lastLine(out))
	}
	if out, _ := ctd.ctr(t, "images", "ls", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("after the refused pull containerd lists images:\n%s", out)
	}

	// With alice's credentials: the token flow, complete and unpacked.
	mark := node.proc.log.Len()
	if out, err := pull("--user", "alice:"+pushUsers["alice"]); err != nil {
		t.Fatalf("ctr pull as alice: %v\n%s\ncairn log:\n%s", err, out, node.proc.log.tail(30))
	}
	out, err := ctd.ctr(t, "images", "check", "--snapshotter", ctd.snapshotter, "name=="+pushedRef)
	if err != nil {
		t.Fatal(err)
	}
	ok := false
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && f[0] == pushedRef && f[2] == digest && f[3] == "complete" && f[len(f)-1] == "true" {
			ok = true
		}
	}
	if !ok {
		t.Errorf("after pulling %s, ctr images check does not show it at %s, complete and unpacked:\n%s", pushedRef, digest, out)
	}
	log := node.proc.log.String()[mark:]
	if !strings.Contains(log, `"user":"alice"`) || !strings.Contains(log, "token issued") {
		t.Errorf("no token was issued to alice for the pull: it did not go through the token flow\ncairn log:\n%s", node.proc.log.tail(30))
	}
	if strings.Contains(node.proc.log.String(), pushUsers["alice"]) {
		t.Error("cairn's log holds alice's password")
	}
	if len(node.blobGETs(mark)) == 0 {
		t.Errorf("containerd's pull fetched no blob through cairn:\n%s", node.proc.log.tail(20))
	}
	node.stop(t)
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
