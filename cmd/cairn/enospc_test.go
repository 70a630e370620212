package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-mirror/cairn/internal/testdisk"
)

// smallDisk returns a data directory on a tmpfs of the given size: blobs,
// temp files and badger share it, the default layout. cairn keeps a
// quarter of such a small file system free for badger (storage's
// reserve), so a fill meets "no space" before the disk is really full.
// Mounting needs root (CI runs as root; elsewhere the test skips unless
// CI=true).
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dataDir := filepath.Join(t.TempDir(), "data")
	testdisk.Mount(t, dataDir, "size="+size)
	return dataDir
}

// blobFiles lists the committed blob files under a data directory.
func blobFiles(t *testing.T, dataDir string) []string {
	t.Helper()
	var files []string
	filepath.WalkDir(filepath.Join(dataDir, "blobs"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, filepath.Base(path))
		}
		return nil
	})
	return files
}

// A full disk during a fill, with least-recently-used blobs to give up:
// the fill evicts and retries, and the client gets the whole blob, cached.
func TestDiskFullEvictsAndRetries(t *testing.T) {
	dataDir := smallDisk(t, "3584k") // less its reserve: room for two 1 MiB layers, not three
	up := newUpstream(t)
	img := randomImage(t, 1<<20, 3)
	up.push(t, "library/x", "v1", img)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, testConfig(t, dataDir, up.host(), up.host()))

	for i, l := range layers {
		d := mustDigest(t, l)
		body, err := readBlob(n.url("/v2/library/x/blobs/" + d))
		if err != nil || !bytes.Equal(body, layerBytes(t, l)) {
			t.Fatalf("layer %d: %d bytes, %v; want the whole layer", i, len(body), err)
		}
		if gets := up.count("GET", "/blobs/"+d); gets != 1 {
			t.Errorf("layer %d: %d upstream GETs, want 1", i, gets)
		}
	}
	m := metricsOf(t, n)
	for _, want := range []string{
		`cairn_cache_fills_total{result="committed"} 3`,
		`cairn_storage_evictions_total{reason="disk_full"}`,
		"cairn_cache_uncached_reads_total 0",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(m, `result="no_space"`) {
		t.Error("a fill gave up although eviction made room")
	}
	last := mustDigest(t, layers[2])
	if files := blobFiles(t, dataDir); len(files) >= 3 || !strings.Contains(strings.Join(files, " "), strings.TrimPrefix(last, "sha256:")) {
		t.Errorf("blob files %v: want the last layer cached and an older one evicted", files)
	}
	if left := dirEntries(t, filepath.Join(dataDir, "tmp")); len(left) != 0 {
		t.Errorf("temp files left: %v", left)
	}
}

// A full disk with nothing to evict: the fill gives up caching and every
// reader, full or ranged, joined before or after, continues on its own
// with its own upstream Range GET. Every body is right, nothing half
// written stays, and it is counted.
func TestDiskFullReadsUncached(t *testing.T) {
	dataDir := smallDisk(t, "1m")
	up := newFaulty(t, 2<<20)
	gate := make(chan struct{})
	up.set(func(f *faulty) { f.gate, f.gateAt = gate, 256<<10 })
	n := startNode(t, testConfig(t, dataDir, up.host(), up.host()))
	url := n.url("/v2/library/x/blobs/" + up.digest)
	size := len(up.data)

	var all, firstBytes sync.WaitGroup
	errs := make(chan error, 4)
	read := func(from, to int) {
		all.Add(1)
		go func() {
			defer all.Done()
			if from == 0 && to == size-1 {
				firstBytes.Add(1)
				errs <- fullRead(url, up.data, firstBytes.Done)
			} else {
				errs <- rangedRead(url, up.data, from, to)
			}
		}()
	}
	read(0, size-1)
	read(0, size-1)
	read(100, 1000)               // ends early: its last byte waits for the digest
	read(size-600_000, size-1-10) // starts past what the disk can hold
	waitUntil(t, 20*time.Second, "the readers to join the fill (coalesced_total 3)", func() bool {
		return strings.Contains(metricsOf(t, n), "cairn_cache_fill_readers_coalesced_total 3")
	})
	waitFor(t, wgDone(&firstBytes), 20*time.Second, "the full readers' first bytes")
	// The ranged readers have nothing to send yet (one holds its last byte,
	// one starts past the gate), so no byte tells they follow the fill:
	// their goroutines do.
	waitUntil(t, 20*time.Second, "all four readers to follow the fill", func() bool {
		return goroutinesIn("cache.(*follower).WriteRange") == 4
	})
	close(gate)
	waitFor(t, wgDone(&all), 30*time.Second, "every reader to finish")
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	gets, ranges := up.count()
	if gets != 5 {
		t.Errorf("upstream GETs = %d (ranges %q), want 5: the fill's and one per reader", gets, ranges)
	}
	for _, r := range ranges[1:] {
		if !strings.HasPrefix(r, "bytes=") || r == "bytes=0-" {
			t.Errorf("an uncached reader asked for %q, want a Range from its own offset", r)
		}
	}
	m := metricsOf(t, n)
	for _, want := range []string{
		`cairn_cache_fills_total{result="no_space"} 1`,
		"cairn_cache_uncached_reads_total 4",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if left := dirEntries(t, filepath.Join(dataDir, "tmp")); len(left) != 0 {
		t.Errorf("temp files left on the full disk: %v", left)
	}
	if files := blobFiles(t, dataDir); len(files) != 0 {
		t.Errorf("blob files %v on a disk too small for the blob", files)
	}

	// A later request: a fresh fill meets the full disk again, and the
	// client is still served, uncached.
	if err := fullRead(url, up.data, func() {}); err != nil {
		t.Errorf("after the first round: %v", err)
	}
	if !strings.Contains(metricsOf(t, n), `cairn_cache_fills_total{result="no_space"} 2`) {
		t.Error("the second fill did not end as no_space")
	}
}

// A blob larger than everything cached: evicting could not make room, so
// nothing is evicted (one over-large request must not empty the cache),
// and the blob is served uncached.
func TestDiskFullFutileEvictionKeepsCache(t *testing.T) {
	dataDir := smallDisk(t, "3584k") // room for two 1 MiB layers
	up := newUpstream(t)
	small := randomImage(t, 1<<20, 2)
	up.push(t, "library/small", "v1", small)
	big := randomImage(t, 4<<20, 1) // more than the disk holds
	up.push(t, "library/big", "v1", big)
	n := startNode(t, testConfig(t, dataDir, up.host(), up.host()))

	smallLayers, _ := small.Layers()
	for i, l := range smallLayers {
		body, err := readBlob(n.url("/v2/library/small/blobs/" + mustDigest(t, l)))
		if err != nil || !bytes.Equal(body, layerBytes(t, l)) {
			t.Fatalf("small layer %d: %v", i, err)
		}
	}
	if files := blobFiles(t, dataDir); len(files) != 2 {
		t.Fatalf("cached before: %v, want the 2 small layers", files)
	}
	bigLayers, _ := big.Layers()
	body, err := readBlob(n.url("/v2/library/big/blobs/" + mustDigest(t, bigLayers[0])))
	if err != nil || !bytes.Equal(body, layerBytes(t, bigLayers[0])) {
		t.Fatalf("big layer: %d bytes, %v", len(body), err)
	}
	if m := metricsOf(t, n); !strings.Contains(m, `cairn_cache_fills_total{result="no_space"} 1`) || strings.Contains(m, `reason="disk_full"`) {
		t.Errorf("want one no_space fill and no disk_full eviction")
	}
	if files := blobFiles(t, dataDir); len(files) != 2 {
		t.Errorf("after a blob larger than the disk, cached blobs = %v; want the 2 small layers kept", files)
	}
}

// Badger's write-ahead logs are sparse memory-mapped files: on a truly
// full disk its next write is a SIGBUS that kills the process. With the
// default layout (meta/ on the same disk), a node that fills its disk
// with blobs keeps working: fills stop at the reserve, evict and go on.
// The node runs in a child process, so that a crash fails this test.
func TestDiskFullDefaultLayoutSurvives(t *testing.T) {
	if dataDir := os.Getenv("CAIRN_TEST_DISKFULL_CHILD"); dataDir != "" {
		up := newUpstream(t)
		img := randomImage(t, 256<<10, 200) // 50 MB through a 24 MB disk
		up.push(t, "library/x", "v1", img)
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		n := startNode(t, testConfig(t, dataDir, up.host(), up.host()))
		for i, l := range layers {
			body, err := readBlob(n.url("/v2/library/x/blobs/" + mustDigest(t, l)))
			if err != nil || !bytes.Equal(body, layerBytes(t, l)) {
				t.Fatalf("layer %d: %d bytes, %v; want the whole layer", i, len(body), err)
			}
		}
		if m := metricsOf(t, n); !strings.Contains(m, `reason="disk_full"`) {
			t.Error("the disk never filled: no disk_full eviction")
		}
		return
	}
	dataDir := smallDisk(t, "24m")
	cmd := exec.Command(os.Args[0], "-test.run=^TestDiskFullDefaultLayoutSurvives$")
	cmd.Env = append(os.Environ(), "CAIRN_TEST_DISKFULL_CHILD="+dataDir)
	if out, err := cmd.CombinedOutput(); err != nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		t.Fatalf("the node on a full disk failed: %v\n%s", err, strings.Join(lines[max(0, len(lines)-30):], "\n"))
	}
}

// goroutinesIn counts the goroutines of this process (the node runs in
// it) with fn on their stack.
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	k := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, fn+"(") {
			k++
		}
	}
	return k
}
