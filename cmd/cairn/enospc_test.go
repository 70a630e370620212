package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A full disk during a fill: the client's response is cut short, the fill
// gives up at once (no retries against the upstream: they cannot help),
// nothing half written stays, and once there is room the blob is fetched.
// The disk is a 256 KiB tmpfs over data_dir/tmp, so it needs root (CI runs
// as root; elsewhere the test skips unless CI=true).
func TestDiskFullDuringFill(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI must run this test as root (it mounts a tmpfs)")
		}
		t.Skip("needs root to mount a small tmpfs")
	}
	up := newFaulty(t, 1<<20)
	dataDir := t.TempDir()
	tmp := filepath.Join(dataDir, "tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", tmp, "tmpfs", 0, "size=256k"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	mounted := true
	unmount := func() {
		if mounted {
			syscall.Unmount(tmp, syscall.MNT_DETACH)
			mounted = false
		}
	}
	t.Cleanup(unmount)
	n := startNode(t, testConfig(t, dataDir, up.host(), up.host()))
	url := n.url("/v2/library/x/blobs/" + up.digest)

	body, err := readBlob(url)
	if err == nil || len(body) >= len(up.data) {
		t.Fatalf("disk full: got %d bytes, err %v; want the response cut short", len(body), err)
	}
	if gets, _ := up.count(); gets != 1 {
		t.Errorf("disk full: %d upstream GETs, want 1 (a full disk is not retried)", gets)
	}
	if left := dirEntries(t, tmp); len(left) != 0 {
		t.Errorf("temp files left on the full disk: %v", left)
	}
	if !strings.Contains(metricsOf(t, n), `cairn_cache_fills_total{result="aborted"} 1`) {
		t.Errorf("the failed fill was not counted as aborted")
	}

	unmount() // room again
	if body, err := readBlob(url); err != nil || len(body) != len(up.data) {
		t.Errorf("with room again: %d bytes, %v", len(body), err)
	}
}
