package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-mirror/cairn/internal/config"
)

// startFaultyNode runs cairn with the faulty upstream as docker.io.
func startFaultyNode(t *testing.T, up *faulty, idle time.Duration) (*node, string) {
	t.Helper()
	dataDir := t.TempDir()
	cfg := testConfig(t, dataDir, up.host(), up.host())
	d := config.Duration(idle)
	for i := range cfg.Upstreams {
		cfg.Upstreams[i].FillIdleTimeout = &d
	}
	return startNode(t, cfg), dataDir
}

// The herd: 64 clients, a quarter of them ranged, on one cold blob. One
// upstream GET; every body right; every full reader has its first byte
// while the upstream is still held halfway (so before the fill completes).
func TestHerdOneUpstreamGet(t *testing.T) {
	up := newFaulty(t, 4<<20)
	gate := make(chan struct{})
	up.set(func(f *faulty) { f.gate, f.gateAt = gate, len(f.data)/2 })
	n, _ := startFaultyNode(t, up, time.Minute)
	url := n.url("/v2/library/x/blobs/" + up.digest)
	size := len(up.data)
	ranges := [][2]int{{0, 0}, {100, 4099}, {size/2 + 10, size/2 + 70000}, {size - 100, size - 1}}

	var firstBytes, all sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		all.Add(1)
		if i%4 == 0 {
			r := ranges[(i/4)%len(ranges)]
			go func() { defer all.Done(); errs <- rangedRead(url, up.data, r[0], r[1]) }()
			continue
		}
		firstBytes.Add(1)
		go func() { defer all.Done(); errs <- fullRead(url, up.data, firstBytes.Done) }()
	}
	waitFor(t, wgDone(&firstBytes), 20*time.Second, "every full reader's first byte while the fill is held halfway")
	close(gate)
	waitFor(t, wgDone(&all), 30*time.Second, "every reader to finish")
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if gets, _ := up.count(); gets != 1 {
		t.Errorf("upstream blob GETs = %d, want exactly 1 for 64 clients", gets)
	}
	// A blob this large reaches its readers once verified, before the
	// commit's fsync: the fill may still be ending.
	var m string
	waitUntil(t, 10*time.Second, "the fill to end (cairn_cache_fills_in_flight 0)", func() bool {
		m = metricsOf(t, n)
		return strings.Contains(m, "cairn_cache_fills_in_flight 0")
	})
	for _, want := range []string{`cairn_cache_fills_total{result="committed"} 1`, "cairn_cache_fills_in_flight 0"} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// fullRead reads the whole blob, calling first after the first byte.
func fullRead(url string, want []byte, first func()) error {
	resp, err := http.Get(url)
	if err != nil {
		first()
		return err
	}
	defer resp.Body.Close()
	head := make([]byte, 1)
	_, err = io.ReadFull(resp.Body, head)
	first()
	if err != nil {
		return fmt.Errorf("first byte: %w", err)
	}
	rest, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(append(head, rest...), want) {
		return fmt.Errorf("full read: status %d, %d bytes, err %v", resp.StatusCode, 1+len(rest), err)
	}
	return nil
}

func rangedRead(url string, data []byte, from, to int) error {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", from, to))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 206 || !bytes.Equal(body, data[from:to+1]) {
		return fmt.Errorf("range %d-%d: status %d, %d bytes, err %v", from, to, resp.StatusCode, len(body), err)
	}
	return nil
}

// Clients that hang up mid-fill, all of them, do not stop the fill: it
// completes and is cached, and the next client costs no upstream request.
func TestFillOutlivesItsClients(t *testing.T) {
	up := newFaulty(t, 2<<20)
	gate := make(chan struct{})
	up.set(func(f *faulty) { f.gate, f.gateAt = gate, len(f.data)/2 })
	n, _ := startFaultyNode(t, up, time.Minute)
	url := n.url("/v2/library/x/blobs/" + up.digest)
	var left sync.WaitGroup
	for range 3 {
		left.Add(1)
		go func() {
			defer left.Done()
			resp, err := http.Get(url)
			if err != nil {
				t.Error(err)
				return
			}
			io.ReadFull(resp.Body, make([]byte, 1000))
			resp.Body.Close() // hang up halfway through the fill
		}()
	}
	waitFor(t, wgDone(&left), 20*time.Second, "the clients to hang up")
	// Release the upstream only once the server has seen every client
	// go (their access lines), so the fill really is on its own.
	waitUntil(t, 20*time.Second, "the server to log the three clients leaving", func() bool {
		return strings.Count(n.logs.String(), `"path":"/v2/library/x/blobs/`) >= 3
	})
	close(gate)
	if resp, body := get(t, "GET", url); resp.StatusCode != 200 || !bytes.Equal(body, up.data) {
		t.Fatalf("after every reader left: status %d, right bytes %v", resp.StatusCode, bytes.Equal(body, up.data))
	}
	if gets, _ := up.count(); gets != 1 {
		t.Errorf("upstream blob GETs = %d, want 1: the abandoned fill was cached", gets)
	}
}

func TestSourceFaults(t *testing.T) {
	tests := []struct {
		name    string
		set     func(*faulty)
		gets    int  // upstream GETs for the first client
		ok      bool // the first client gets the blob whole
		resumed bool // the second GET carried Range: bytes=N-
	}{
		{"reset after half, resumed with Range", func(f *faulty) { f.drops, f.dropAfter = 1, len(f.data)/2 }, 2, true, true},
		{"stalled body, resumed after the idle timeout", func(f *faulty) { f.stalls, f.stallAfter = 1, len(f.data)/3 }, 2, true, true},
		{"reset, then a source that ignores Range", func(f *faulty) { f.drops, f.dropAfter, f.noRange = 1, len(f.data)/2, true }, 2, true, true},
		{"flipped byte", func(f *faulty) { f.flip = true }, 1, false, false},
		{"short body every time", func(f *faulty) { f.drops, f.dropAfter = 100, len(f.data)/8 }, maxResumesForTest + 1, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newFaulty(t, 1<<20)
			up.set(tt.set)
			n, dataDir := startFaultyNode(t, up, time.Second)
			url := n.url("/v2/library/x/blobs/" + up.digest)
			body, err := readBlob(url)
			whole := err == nil && bytes.Equal(body, up.data)
			if whole != tt.ok {
				t.Fatalf("first client: whole %v (%d bytes, err %v), want %v", whole, len(body), err, tt.ok)
			}
			if !tt.ok && len(body) >= len(up.data) {
				t.Errorf("a failed fill delivered %d bytes, want the response cut short", len(body))
			}
			gets, ranges := up.count()
			if gets != tt.gets {
				t.Errorf("upstream GETs %d, want %d (ranges %q)", gets, tt.gets, ranges)
			}
			if tt.resumed && (len(ranges) < 2 || !strings.HasPrefix(ranges[1], "bytes=") || ranges[1] == "bytes=0-") {
				t.Errorf("no resume with Range: bytes=N-: ranges %q", ranges)
			}
			if !tt.ok {
				if left := dirEntries(t, filepath.Join(dataDir, "tmp")); len(left) != 0 {
					t.Errorf("temp files left after a failed fill: %v", left)
				}
				up.set(func(f *faulty) { f.drops, f.stalls, f.flip, f.noRange = 0, 0, false, false })
				if body, err := readBlob(url); err != nil || !bytes.Equal(body, up.data) {
					t.Errorf("after the source recovered: %d bytes, %v", len(body), err)
				}
				if after, _ := up.count(); after != gets+1 {
					t.Errorf("upstream GETs %d after recovery, want %d: a fresh fill", after, gets+1)
				}
			}
		})
	}
}

// maxResumesForTest mirrors cache.maxResumes (a fill reopens a source at
// most this often).
const maxResumesForTest = 3

// readBlob GETs a blob; a connection cut short is an error.
func readBlob(url string) ([]byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	return body, err
}

func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// cairn serve is SIGKILLed in the middle of a fill, restarted, and serves
// the blob whole: nothing half written survives.
func TestKill9MidFill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts cairn as a subprocess")
	}
	up := newFaulty(t, 2<<20)
	gate := make(chan struct{})
	defer close(gate)
	up.set(func(f *faulty) { f.gate, f.gateAt = gate, len(f.data)/2 })
	dataDir := t.TempDir()
	addr := freeAddr(t)
	cfgPath := filepath.Join(t.TempDir(), "cairn.yaml")
	yaml := fmt.Sprintf("version: 1\nlisten: %q\nadmin_listen: \"\"\ndata_dir: %q\nupstreams: [{name: docker.io, url: \"http://%s\", default: true}]\n", addr, dataDir, up.host())
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	url := "http://" + addr + "/v2/library/x/blobs/" + up.digest

	child := startChild(t, cfgPath, addr)
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, len(up.data)/4)); err != nil {
		t.Fatalf("reading the fill before the kill: %v", err)
	}
	if left := dirEntries(t, filepath.Join(dataDir, "tmp")); len(left) == 0 {
		t.Fatalf("no temp file mid-fill; the test would prove nothing")
	}
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()
	resp.Body.Close()

	up.set(func(f *faulty) { f.gate = nil })
	startChild(t, cfgPath, addr)
	body, err := readBlob(url)
	if err != nil || !bytes.Equal(body, up.data) {
		t.Fatalf("after the restart: %d bytes, %v; want the blob whole", len(body), err)
	}
	if left := dirEntries(t, filepath.Join(dataDir, "tmp")); len(left) != 0 {
		t.Errorf("temp files after restart and a completed fill: %v", left)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startChild runs `cairn serve -c cfg` as a subprocess (this test binary,
// re-executed into main) and waits until it answers on addr.
func startChild(t *testing.T, cfg, addr string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "serve", "-c", cfg)
	cmd.Env = append(os.Environ(), "CAIRN_TEST_RUN_MAIN=1")
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("child log:\n%s", logs.String())
		}
	})
	waitUntil(t, 10*time.Second, "cairn to answer on "+addr, func() bool {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	return cmd
}

func TestMain(m *testing.M) {
	if os.Getenv("CAIRN_TEST_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// A client that stops reading for longer than fill_idle_timeout does not
// fail the fill: the idle timeout is about the upstream. The paused client
// gets the whole blob once it reads again, and the next client is served
// from the same (single) upstream GET.
func TestPausedClientDoesNotFailFill(t *testing.T) {
	f := newFixture(t)
	img := randomImage(t, 16<<20, 1) // more than loopback socket buffers hold
	f.docker.push(t, "library/big", "1", img)
	f.docker.reset()
	f.node.stop(t)
	cfg := testConfig(t, f.dataDir, f.docker.host(), f.ghcr.host())
	d := config.Duration(time.Second)
	for i := range cfg.Upstreams {
		cfg.Upstreams[i].FillIdleTimeout = &d
	}
	n := startNode(t, cfg)
	layers, _ := img.Layers()
	dgst := mustDigest(t, layers[0])
	want := layerBytes(t, layers[0])
	conn, err := net.Dial("tcp", n.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v2/library/big/blobs/%s HTTP/1.1\r\nHost: x\r\n\r\n", dgst)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // the behaviour under test: a client paused for 3 idle timeouts, not disconnected
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	got, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the paused client got %d of %d bytes (right: %v), err %v", len(got), len(want), bytes.Equal(got, want), err)
	}
	if resp, body := get(t, "GET", n.url("/v2/library/big/blobs/"+dgst)); resp.StatusCode != 200 || !bytes.Equal(body, want) {
		t.Errorf("the next client: status %d, %d bytes, right %v", resp.StatusCode, len(body), bytes.Equal(body, want))
	}
	if c := f.docker.count("GET", "/blobs/"+dgst); c != 1 {
		t.Errorf("upstream blob GETs %d, want 1: the paused client's fill was thrown away", c)
	}
}
