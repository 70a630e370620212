package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-mirror/cairn/internal/procs"
)

// ctrNamespace keeps the test's images apart from anything else.
const ctrNamespace = "e2e"

// containerd is a private containerd daemon, and ctr pointed at it.
type containerd struct {
	dir         string // short: the socket path must fit in ~108 bytes
	sock        string
	hosts       string // --hosts-dir for ctr
	snapshotter string
	proc        *proc
}

// startContainerd runs containerd with its root, state and socket in a
// short temp dir under /tmp, without the CRI plugin. $CAIRN_E2E_SNAPSHOTTER
// picks the snapshotter; else overlayfs where an overlay mount works,
// else native.
func startContainerd(t *testing.T) *containerd {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "ctd")
	if err != nil {
		t.Fatal(err)
	}
	d, err := procs.StartContainerd(dir, os.Getenv("CAIRN_E2E_SNAPSHOTTER"), startTimeout)
	if err != nil {
		t.Fatal(err)
	}
	c := &containerd{dir: dir, sock: d.Sock, hosts: filepath.Join(dir, "hosts"), snapshotter: d.Snapshotter,
		proc: &proc{Proc: d.Proc, log: d.Proc.Log}}
	t.Cleanup(func() {
		_ = c.proc.stop()
		if t.Failed() {
			t.Logf("kept %s (containerd.log, root, state) for a look", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	t.Logf("containerd in %s, snapshotter %s", dir, c.snapshotter)
	return c
}

// writeHosts points docker.io and ghcr.io at the mirror, with a closed port
// as the server so a failing mirror is never hidden by a fallback.
func (c *containerd) writeHosts(t *testing.T, mirror string) {
	t.Helper()
	for _, registry := range []string{"docker.io", "ghcr.io"} {
		dir := filepath.Join(c.hosts, registry)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		toml := fmt.Sprintf("server = \"http://127.0.0.1:9\"\n\n[host.\"http://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", mirror)
		if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(toml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// ctr runs ctr against this containerd in the test's namespace.
func (c *containerd) ctr(t *testing.T, args ...string) (string, error) {
	t.Helper()
	argv := append([]string{"ctr", "--address", c.sock, "--namespace", ctrNamespace}, args...)
	return run(t.Context(), argv...)
}

// pull pulls (and unpacks) ref through the mirror, then checks that
// containerd has it at digest, complete and unpacked.
func (c *containerd) pull(t *testing.T, ref, digest string) error {
	t.Helper()
	if _, err := c.ctr(t, "images", "pull", "--hosts-dir", c.hosts, "--snapshotter", c.snapshotter, ref); err != nil {
		return err
	}
	// REF TYPE DIGEST STATUS SIZE UNPACKED, e.g.
	// docker.io/library/plain:1.0 application/vnd...v2+json sha256:c451... complete (4/4) 194.5 KiB/194.5 KiB true
	out, err := c.ctr(t, "images", "check", "--snapshotter", c.snapshotter, "name=="+ref)
	if err != nil {
		return err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && f[0] == ref && f[2] == digest && f[3] == "complete" && f[len(f)-1] == "true" {
			return nil
		}
	}
	return fmt.Errorf("after pulling %s, ctr images check does not show it at %s, complete and unpacked:\n%s", ref, digest, out)
}

// clear removes every image, content blob and snapshot of the namespace,
// so the next pull fetches everything from the mirror again.
func (c *containerd) clear(t *testing.T) {
	t.Helper()
	images, err := c.ctr(t, "images", "ls", "-q")
	if err != nil {
		t.Fatal(err)
	}
	if refs := strings.Fields(images); len(refs) > 0 {
		// --sync waits for the garbage collector: content and snapshots go too.
		if _, err := c.ctr(t, append([]string{"images", "rm", "--sync"}, refs...)...); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.ctr(t, "content", "prune", "references"); err != nil {
		t.Fatal(err)
	}
	content, err := c.ctr(t, "content", "ls", "-q")
	if err != nil {
		t.Fatal(err)
	}
	if digests := strings.Fields(content); len(digests) > 0 {
		if _, err := c.ctr(t, append([]string{"content", "rm"}, digests...)...); err != nil {
			t.Fatal(err)
		}
	}
	snaps, err := c.ctr(t, "snapshots", "--snapshotter", c.snapshotter, "ls")
	if err != nil {
		t.Fatal(err)
	}
	content, _ = c.ctr(t, "content", "ls", "-q")
	if len(strings.Fields(content)) > 0 || len(strings.Split(strings.TrimSpace(snaps), "\n")) > 1 {
		t.Fatalf("containerd still holds content or snapshots after clearing:\ncontent:\n%s\nsnapshots:\n%s", content, snaps)
	}
}
