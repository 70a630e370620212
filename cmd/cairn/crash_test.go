package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-mirror/cairn/storage"
)

// cairn serve is SIGKILLed while clients pull continuously under a budget
// so small that fills and evictions interleave. After a restart every blob
// is served whole, and after a clean stop a full verify finds nothing to
// quarantine: metadata and files agree.
func TestKill9DuringFillsAndEviction(t *testing.T) {
	if testing.Short() {
		t.Skip("starts cairn as a subprocess")
	}
	const layer = 64 << 10
	up := newUpstream(t)
	img := randomImage(t, layer, 16)
	up.push(t, "library/churn", "v1", img)
	layers, _ := img.Layers()
	dataDir, addr := t.TempDir(), freeAddr(t)
	cfgPath := filepath.Join(t.TempDir(), "cairn.yaml")
	yaml := fmt.Sprintf("version: 1\nlisten: %q\nadmin_listen: \"\"\ndata_dir: %q\n"+
		"cache: {max_size: %d, evict_high: 0.5, evict_low: 0.25}\n"+
		"upstreams: [{name: docker.io, url: \"http://%s\", default: true}]\n", addr, dataDir, 4*layer, up.host())
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	url := func(i int) string { return "http://" + addr + "/v2/library/churn/blobs/" + mustDigest(t, layers[i]) }

	child := startChild(t, cfgPath, addr)
	var pulls atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; i < 500; i++ { // bounded
				select {
				case <-stop:
					return
				default:
				}
				if _, err := readBlob(url((i + w*4) % len(layers))); err == nil {
					pulls.Add(1)
				}
			}
		})
	}
	waitUntil(t, 20*time.Second, "40 pulls before the kill", func() bool { return pulls.Load() >= 40 })
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()
	close(stop)
	wg.Wait()

	child = startChild(t, cfgPath, addr)
	for i, l := range layers {
		if body, err := readBlob(url(i)); err != nil || !bytes.Equal(body, layerBytes(t, l)) {
			t.Errorf("layer %d after the restart: %d bytes, %v", i, len(body), err)
		}
	}
	child.Process.Signal(syscall.SIGTERM)
	child.Wait()
	store, err := storage.Open(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	report, err := store.Verify(t.Context())
	if err != nil || len(report.Quarantined) != 0 {
		t.Errorf("verify after the crash: %+v, %v; want nothing quarantined", report, err)
	}
	if _, blobs := store.Usage(); blobs != report.Checked {
		t.Errorf("usage counts %d blobs, verify checked %d", blobs, report.Checked)
	}
}
