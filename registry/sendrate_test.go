package registry

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"
)

// smallBuffers keeps the kernel's socket buffers small on both ends, so
// that a client's reading pace reaches the server's writes quickly.
const smallBuffers = 16 << 10

// floorServer serves h under a send floor on loopback, with small send
// buffers on its connections.
func floorServer(t *testing.T, rate int64, window time.Duration, h http.Handler) string {
	t.Helper()
	f, err := NewSendFloor(rate, window)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(f.Wrap(h))
	srv.Listener = smallSendBuffers{srv.Listener}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(smallBuffers)
	}
	return c, err
}

// dialSmall connects with a small receive buffer (set before connect, so
// that the window the client advertises stays small).
func dialSmall(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, smallBuffers)
		})
		return errors.Join(err, serr)
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// getOn sends a GET on c and returns the response, its body unread.
func getOn(t *testing.T, c net.Conn, br *bufio.Reader, path string) *http.Response {
	t.Helper()
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: cairn\r\n\r\n", path); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp
}

// readPaced reads r at no more than rate bytes a second (bursting to
// catch up after a pause, as a real client's window would), up to n bytes.
func readPaced(r io.Reader, rate int64, n int64) (int64, error) {
	start := time.Now()
	buf := make([]byte, 4<<10)
	var got int64
	for got < n {
		if ahead := time.Duration(got*int64(time.Second)/rate) - time.Since(start); ahead > 0 {
			time.Sleep(ahead) // the pace under test, not a synchronisation
		}
		k, err := r.Read(buf[:min(int64(len(buf)), n-got)])
		got += int64(k)
		if err == io.EOF && got == n {
			return got, nil
		}
		if err != nil {
			return got, err
		}
	}
	return got, nil
}

// bigWrites answers with n bytes written in writes of size bytes (the
// cache's warm path writes 2 MiB at a time) and reports the handler's
// error, nil or not, on done.
func bigWrites(n, size int, done chan<- error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(n))
		buf := make([]byte, size)
		var err error
		for sent := 0; sent < n && err == nil; sent += size {
			_, err = w.Write(buf[:min(size, n-sent)])
		}
		done <- err
	})
}

func TestSendFloorKeepsAClientAboveTheRateWhateverTheWriteSize(t *testing.T) {
	// A 128 KiB bucket and one 2 MiB write: a deadline per write would cut
	// this client, which reads at four times the floor.
	const rate, size = 256 << 10, 2 << 20
	done := make(chan error, 1)
	addr := floorServer(t, rate, 500*time.Millisecond, bigWrites(size, size, done))
	c := dialSmall(t, addr)
	resp := getOn(t, c, bufio.NewReaderSize(c, 4<<10), "/")
	got, err := readPaced(resp.Body, 4*rate, size)
	if got != size || err != nil {
		t.Fatalf("read %d of %d bytes at 4x the floor: %v", got, size, err)
	}
	if err := <-done; err != nil {
		t.Errorf("handler's write: %v, want none", err)
	}
}

func TestSendFloorCutsAStalledReaderWithinAboutAWindow(t *testing.T) {
	// 1 MiB/s over 300 ms: a stopped client is cut at most the window
	// plus one 2 MiB write at the rate (2.3 s) after its last progress;
	// without the floor it would hold the response for ever.
	const rate, window = 1 << 20, 300 * time.Millisecond
	done := make(chan error, 1)
	addr := floorServer(t, rate, window, bigWrites(32<<20, 2<<20, done))
	c := dialSmall(t, addr)
	resp := getOn(t, c, bufio.NewReaderSize(c, 4<<10), "/")
	go func() {
		buf := make([]byte, 16)
		for {
			if _, err := resp.Body.Read(buf); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond) // a few bytes a second
		}
	}()
	select {
	case err := <-done:
		if !errors.Is(err, errTooSlow) {
			t.Errorf("handler's write failed with %v, want %v", err, errTooSlow)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a client reading 160 bytes a second still held its response after 10s")
	}
}

func TestSendFloorSparesTheHandlersOwnPauses(t *testing.T) {
	// The handler waits (for a fill, say) three windows between writes;
	// the client, reading at once, is not to blame.
	const window = 100 * time.Millisecond
	resume := make(chan struct{})
	done := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(128<<10))
		buf := make([]byte, 64<<10)
		_, err := w.Write(buf)
		if err == nil {
			http.NewResponseController(w).Flush()
			<-resume
			_, err = w.Write(buf)
		}
		done <- err
	})
	c := dialSmall(t, floorServer(t, 1<<20, window, h))
	resp := getOn(t, c, bufio.NewReaderSize(c, 4<<10), "/")
	if _, err := io.ReadFull(resp.Body, make([]byte, 64<<10)); err != nil {
		t.Fatal(err)
	}
	<-time.After(3 * window) // the pause under test
	close(resume)
	if n, err := io.Copy(io.Discard, resp.Body); n != 64<<10 || err != nil {
		t.Errorf("after the pause: read %d bytes (%v), want %d", n, err, 64<<10)
	}
	if err := <-done; err != nil {
		t.Errorf("handler's write after its pause: %v, want none", err)
	}
}

func TestSendFloorSparesTheHandlersTimeAfterItsLastWrite(t *testing.T) {
	// The handler's last bytes are still buffered when it returns, three
	// windows after it wrote them: net/http sends them then, and the
	// client, reading at once, gets them.
	const window = 100 * time.Millisecond
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		_, _ = w.Write(make([]byte, 100))
		<-time.After(3 * window) // the handler's own time, under test
	})
	c := dialSmall(t, floorServer(t, 1<<20, window, h))
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	resp := getOn(t, c, bufio.NewReader(c), "/")
	if n, err := io.Copy(io.Discard, resp.Body); n != 100 || err != nil {
		t.Errorf("read %d bytes (%v), want 100", n, err)
	}
}

func TestSendFloorWritesAsIsWithoutDeadlines(t *testing.T) {
	f, err := NewSendFloor(1, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	f.Wrap(bigWrites(3<<20, 2<<20, make(chan error, 1))).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Body.Len() != 3<<20 {
		t.Errorf("recorded %d bytes, want %d", rec.Body.Len(), 3<<20)
	}
}

func TestNewSendFloorRefusesNonsense(t *testing.T) {
	tests := []struct {
		rate   int64
		window time.Duration
		ok     bool
	}{
		{0, 0, true},
		{1024, time.Minute, true},
		{-1, time.Minute, false},
		{1024, 0, false},
		{1024, -time.Second, false},
	}
	for _, tt := range tests {
		_, err := NewSendFloor(tt.rate, tt.window)
		if (err == nil) != tt.ok {
			t.Errorf("NewSendFloor(%d, %s): err %v, want ok=%v", tt.rate, tt.window, err, tt.ok)
		}
	}
}

// BenchmarkSendFloor measures what the floor costs a fast client of 2 MiB
// writes (the cache's warm path) on loopback: the default floor (1 KiB/s
// over a minute) writes them in 30 KiB pieces, a 64 KiB/s floor in
// 1.9 MiB ones.
func BenchmarkSendFloor(b *testing.B) {
	const size = 64 << 20
	for _, bc := range []struct {
		name string
		rate int64
	}{{"none", 0}, {"1KiB_per_s", 1 << 10}, {"64KiB_per_s", 64 << 10}} {
		b.Run(bc.name, func(b *testing.B) {
			f, err := NewSendFloor(bc.rate, time.Minute)
			if err != nil {
				b.Fatal(err)
			}
			srv := httptest.NewServer(f.Wrap(bigWrites(size, 2<<20, make(chan error, 1<<20))))
			defer srv.Close()
			hc := &http.Client{Transport: &http.Transport{DisableCompression: true, ReadBufferSize: 64 << 10}}
			defer hc.CloseIdleConnections()
			buf := make([]byte, 256<<10)
			b.SetBytes(size)
			for b.Loop() {
				resp, err := hc.Get(srv.URL)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{resp.Body}, buf)
				resp.Body.Close()
				if n != size || err != nil {
					b.Fatalf("got %d bytes: %v", n, err)
				}
			}
		})
	}
}

// Over HTTP/2 a write deadline is a timer that resets the stream when it
// fires: none may stay armed while the handler waits between writes, or a
// client reading at full speed loses its download during a fill's pause.
func TestSendFloorSparesHandlerPausesOverHTTP2(t *testing.T) {
	const window = 100 * time.Millisecond
	f, err := NewSendFloor(1<<20, window)
	if err != nil {
		t.Fatal(err)
	}
	resume := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(128<<10))
		buf := make([]byte, 64<<10)
		if _, err := w.Write(buf); err != nil {
			return
		}
		http.NewResponseController(w).Flush()
		<-resume
		w.Write(buf)
	})
	srv := httptest.NewUnstartedServer(f.Wrap(h))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("protocol %s, want HTTP/2", resp.Proto)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 64<<10)); err != nil {
		t.Fatal(err)
	}
	<-time.After(3 * window) // the pause under test
	close(resume)
	if n, err := io.Copy(io.Discard, resp.Body); n != 64<<10 || err != nil {
		t.Errorf("after the handler's pause: read %d bytes (%v), want %d", n, err, 64<<10)
	}
}
