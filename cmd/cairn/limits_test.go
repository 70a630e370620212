package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cairn-mirror/cairn/internal/config"
	"github.com/cairn-mirror/cairn/storage"
)

// startTuned starts a node as startNode does, after tune has changed what
// a test must shorten (timeouts, the shutdown grace) or add.
func startTuned(t *testing.T, cfg *config.Config, tune func(*server)) *node {
	t.Helper()
	logs := &syncBuffer{}
	log, err := newLogger(cfg.Log.Level, cfg.Log.Format, logs)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newServer(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	tune(s)
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{s: s, cancel: cancel, done: make(chan struct{}), logs: logs}
	go func() {
		n.err = s.Run(ctx)
		close(n.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-n.done
		if t.Failed() {
			t.Logf("cairn log:\n%s", logs.String())
		}
	})
	return n
}

// limitsNode is a node with the given limits section and upstreams that
// hold nothing.
func limitsNode(t *testing.T, limits string, tune func(*server)) *node {
	t.Helper()
	up := newUpstream(t)
	return startTuned(t, testConfig(t, t.TempDir(), up.host(), up.host(), limits), tune)
}

// dial connects to the node's API listener, with a receive buffer of
// rcvbuf bytes when it is not 0 (set before connect, so that the window
// the client advertises stays small).
func dial(t *testing.T, addr string, rcvbuf int) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			})
			return errors.Join(err, serr)
		}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedBy reports whether the server closed c before the deadline (a
// read ends with EOF or a reset, not a timeout).
func closedBy(c net.Conn, deadline time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(deadline))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

func TestSlowlorisIsCutByTheReadHeaderTimeout(t *testing.T) {
	var configured time.Duration
	n := limitsNode(t, "", func(s *server) {
		configured = s.api.ReadHeaderTimeout
		s.api.ReadHeaderTimeout = 300 * time.Millisecond
	})
	if configured != readHeaderTimeout || configured <= 0 {
		t.Fatalf("the API server's ReadHeaderTimeout is %s, want %s", configured, readHeaderTimeout)
	}
	c := dial(t, n.addr(), 0)
	fmt.Fprintf(c, "GET /v2/ HTTP/1.1\r\nHost: cairn\r\nX-Slow: ")
	stop := make(chan struct{})
	defer close(stop)
	go func() { // a header byte every 50 ms, never the end of the block
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := c.Write([]byte("a")); err != nil {
					return
				}
			}
		}
	}()
	if !closedBy(c, 10*time.Second) {
		t.Fatal("a client sending its headers a byte at a time was still connected after 10s")
	}
}

func TestHeaderBlockOverMaxHeaderBytesGets431(t *testing.T) {
	n := limitsNode(t, "limits: {max_header_bytes: 4KiB}", func(*server) {})
	// net/http reads 4 KiB past the cap before it refuses.
	for _, tt := range []struct {
		header int
		want   bool // refused
	}{{1 << 10, false}, {16 << 10, true}} {
		c := dial(t, n.addr(), 0)
		fmt.Fprintf(c, "GET /v2/ HTTP/1.1\r\nHost: cairn\r\nX-Padding: %s\r\n\r\n", strings.Repeat("a", tt.header))
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil) // the body may be cut by a reset
		if err != nil {
			t.Fatalf("a %d-byte header: %v", tt.header, err)
		}
		if got := resp.StatusCode == http.StatusRequestHeaderFieldsTooLarge; got != tt.want {
			t.Errorf("a %d-byte header: status %d, want 431: %v", tt.header, resp.StatusCode, tt.want)
		}
	}
}

// served sends a keep-alive request on c and reports whether an answer
// came before the deadline.
func served(t *testing.T, c net.Conn, br *bufio.Reader, deadline time.Duration) bool {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(deadline))
	resp, err := http.ReadResponse(br, nil)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	if err != nil {
		t.Fatalf("reading an answer: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return true
}

func TestMaxConnectionsHoldsTheExtraConnection(t *testing.T) {
	n := limitsNode(t, "limits: {max_connections: 2}", func(*server) {})
	conns := make([]net.Conn, 3)
	readers := make([]*bufio.Reader, 3)
	for i := range conns {
		conns[i] = dial(t, n.addr(), 0) // the third one waits in the kernel's queue
		readers[i] = bufio.NewReader(conns[i])
		fmt.Fprintf(conns[i], "GET /v2/ HTTP/1.1\r\nHost: cairn\r\n\r\n")
		want := i < 2
		wait := 10 * time.Second
		if !want {
			wait = 300 * time.Millisecond // a negative check: nothing may come
		}
		if got := served(t, conns[i], readers[i], wait); got != want {
			t.Fatalf("connection %d of a cap of 2: served %v, want %v", i+1, got, want)
		}
	}
	conns[0].Close()
	if !served(t, conns[2], readers[2], 10*time.Second) {
		t.Error("the third connection was not served after the first one closed")
	}
}

func TestSlowReaderOfAWarmBlobIsCutAndReleasesIt(t *testing.T) {
	up := newUpstream(t)
	want := randBytes(t, 16<<20) // more than the kernel's buffers hold
	img, err := mutate.AppendLayers(empty.Image, static.NewLayer(want, types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	up.push(t, "library/big", "v1", img)
	dgst := digestOf(want)
	// 1 MiB/s over 300 ms: this reader is cut at most the window plus one
	// 2 MiB write at the rate (2.3 s) after its last progress.
	cfg := testConfig(t, t.TempDir(), up.host(), up.host(), "limits: {min_send_rate: 1MiB, min_send_window: 300ms}")
	n := startTuned(t, cfg, func(*server) {})
	path := "/v2/library/big/blobs/" + dgst
	if resp, body := get(t, "GET", n.url(path)); resp.StatusCode != 200 || digestOf(body) != dgst {
		t.Fatalf("warming: status %d, %d bytes", resp.StatusCode, len(body))
	}

	c := dial(t, n.addr(), 16<<10)
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: cairn\r\n\r\n", path)
	resp, err := http.ReadResponse(bufio.NewReaderSize(c, 4<<10), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("slow GET: %v, status %v", err, resp)
	}
	if !n.s.cache.Busy(dgst) {
		t.Fatal("the blob is not marked in use while its body is being sent")
	}
	go func() { // a few bytes a second
		buf := make([]byte, 16)
		for {
			if _, err := resp.Body.Read(buf); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond) // the pace under test
		}
	}()
	t0 := time.Now()
	deadline := time.Now().Add(10 * time.Second)
	defer func() { t.Logf("released after %s", time.Since(t0)) }()
	for n.s.cache.Busy(dgst) {
		if time.Now().After(deadline) {
			t.Fatal("a client reading 160 bytes a second still held the blob (its buffer and eviction guard) after 10s")
		}
		time.Sleep(20 * time.Millisecond) // polling, under the deadline above
	}

	if resp, body := get(t, "GET", n.url(path)); resp.StatusCode != 200 || len(body) != len(want) || digestOf(body) != dgst {
		t.Errorf("a client reading at full speed: status %d, %d of %d bytes", resp.StatusCode, len(body), len(want))
	}
}

// inFlight is a handler that holds its request until its connection is
// closed, then until released, and then uses the store.
type inFlight struct {
	store              *storage.Store
	started, unblocked chan struct{}
	release            chan struct{}
	storeErr           chan error
}

func newInFlight(store *storage.Store) *inFlight {
	return &inFlight{store: store, started: make(chan struct{}), unblocked: make(chan struct{}),
		release: make(chan struct{}), storeErr: make(chan error, 1)}
}

func (h *inFlight) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	close(h.started)
	<-r.Context().Done() // the shutdown grace is over: Close cut the connection
	close(h.unblocked)
	<-h.release
	_, err := h.store.Stat("sha256:" + strings.Repeat("0", 64))
	h.storeErr <- err
}

func TestShutdownClosesTheStoreOnlyAfterHandlersReturn(t *testing.T) {
	var h *inFlight
	n := limitsNode(t, "", func(s *server) {
		s.grace = 100 * time.Millisecond
		h = newInFlight(s.store)
		s.api.Handler = s.handlers.Track(h)
	})
	go http.Get(n.url("/v2/")) //nolint:errcheck // its connection is cut by the shutdown
	<-h.started
	n.cancel()
	<-h.unblocked
	select {
	case <-n.done:
		t.Fatal("Run returned (the store closed) while a handler was still running")
	case <-time.After(300 * time.Millisecond): // a negative check: Run must wait
	}
	close(h.release)
	if err := <-h.storeErr; !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("the handler's store call after the shutdown began: %v, want %v (the store still open)", err, storage.ErrNotFound)
	}
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the last handler did")
	}
}

func TestShutdownGivesUpOnAHandlerThatNeverReturns(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	started := make(chan struct{})
	n := limitsNode(t, "", func(s *server) {
		s.grace, s.closeWait = 50*time.Millisecond, 200*time.Millisecond
		s.api.Handler = s.handlers.Track(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
			close(started)
			<-release // deaf to its context and its connection
		}))
	})
	go http.Get(n.url("/v2/")) //nolint:errcheck // its connection is cut by the shutdown
	<-started
	n.cancel()
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run waited more than 10s for a handler that never returns")
	}
	if !strings.Contains(n.logs.String(), "handlers still running") {
		t.Errorf("no log line names the handler left running; log:\n%s", n.logs.String())
	}
}
