package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
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
// short temp dir under /tmp, without the CRI plugin.
func startContainerd(t *testing.T) *containerd {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "ctd")
	if err != nil {
		t.Fatal(err)
	}
	c := &containerd{dir: dir, sock: filepath.Join(dir, "c.sock"), hosts: filepath.Join(dir, "hosts")}
	c.snapshotter = pickSnapshotter(t, dir)
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.sock, filepath.Join(dir, "opt"))
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	c.proc, err = startProc("containerd", filepath.Join(dir, "containerd.log"), "containerd", "--config", cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.proc.stop()
		if t.Failed() {
			t.Logf("kept %s (containerd.log, root, state) for a look", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	err = c.proc.waitReady(startTimeout, func() error {
		_, err := run(t.Context(), "ctr", "--address", c.sock, "version")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("containerd in %s, snapshotter %s", dir, c.snapshotter)
	return c
}

// pickSnapshotter returns $CAIRN_E2E_SNAPSHOTTER, else overlayfs when an
// overlay mount works in dir (it does as root on ext4; some sandboxes
// refuse it), else native, which only copies files.
func pickSnapshotter(t *testing.T, dir string) string {
	t.Helper()
	if s := os.Getenv("CAIRN_E2E_SNAPSHOTTER"); s != "" {
		return s
	}
	probe := filepath.Join(dir, "overlay-probe")
	var opts []string
	for _, d := range []string{"lower", "upper", "work", "merged"} {
		if err := os.MkdirAll(filepath.Join(probe, d), 0o755); err != nil {
			t.Fatal(err)
		}
		opts = append(opts, d+"dir="+filepath.Join(probe, d))
	}
	defer func() { _ = os.RemoveAll(probe) }()
	merged := filepath.Join(probe, "merged")
	if err := syscall.Mount("overlay", merged, "overlay", 0, strings.Join(opts[:3], ",")); err != nil {
		t.Logf("overlay mount refused here (%v): using the native snapshotter", err)
		return "native"
	}
	_ = syscall.Unmount(merged, 0)
	return "overlayfs"
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
