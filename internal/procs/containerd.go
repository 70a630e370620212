package procs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Containerd is a private containerd daemon (without the CRI plugin) with
// its root, state and socket in Dir.
type Containerd struct {
	Dir, Sock   string
	Snapshotter string // overlayfs where an overlay mount works in Dir, else native
	Proc        *Proc
}

// StartContainerd runs containerd in dir, which should be short: the
// socket path must fit in about 108 bytes. It waits until ctr answers.
// snapshotter overrides the choice when not empty.
func StartContainerd(dir, snapshotter string, timeout time.Duration) (*Containerd, error) {
	c := &Containerd{Dir: dir, Sock: filepath.Join(dir, "c.sock"), Snapshotter: snapshotter}
	if c.Snapshotter == "" {
		c.Snapshotter = pickSnapshotter(dir)
	}
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.Sock, filepath.Join(dir, "opt"))
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	p, err := Start("containerd", filepath.Join(dir, "containerd.log"), "containerd", "--config", path)
	if err != nil {
		return nil, err
	}
	c.Proc = p
	err = p.WaitReady(timeout, func() error {
		_, err := Run(context.Background(), timeout, "ctr", "--address", c.Sock, "version")
		return err
	})
	if err != nil {
		_ = p.Stop()
		return nil, err
	}
	return c, nil
}

// pickSnapshotter is overlayfs when an overlay mount works in dir (it does
// as root on ext4; some sandboxes refuse it), else native, which copies.
func pickSnapshotter(dir string) string {
	probe := filepath.Join(dir, "overlay-probe")
	defer os.RemoveAll(probe)
	var opts []string
	for _, d := range []string{"lower", "upper", "work", "merged"} {
		if err := os.MkdirAll(filepath.Join(probe, d), 0o755); err != nil {
			return "native"
		}
		opts = append(opts, d+"dir="+filepath.Join(probe, d))
	}
	merged := filepath.Join(probe, "merged")
	if err := syscall.Mount("overlay", merged, "overlay", 0, strings.Join(opts[:3], ",")); err != nil {
		return "native"
	}
	_ = syscall.Unmount(merged, 0)
	return "overlayfs"
}
