// Package testdisk gives tests a small file system to fill: a tmpfs of a
// chosen size, for what cairn does on a full disk.
package testdisk

import (
	"os"
	"syscall"
	"testing"
)

// Mount mounts a tmpfs with the given options ("size=32m",
// "size=1m,nr_inodes=1") on dir, creating dir, and unmounts it when the
// test ends. Mounting needs root: without it the test is skipped, except
// under CI=true, where it fails (CI runs as root, and these tests must
// run there).
func Mount(t testing.TB, dir, options string) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI must run this test as root (it mounts a tmpfs)")
		}
		t.Skip("needs root to mount a small tmpfs")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, options); err != nil {
		t.Fatalf("mount a tmpfs (%s) on %s: %v", options, dir, err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
}
