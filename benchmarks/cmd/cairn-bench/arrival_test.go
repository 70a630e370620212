package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// A byte's arrival is when it reached the socket, not when the client got
// round to reading it; and it is the arrival of the byte asked about.
func TestArrivalIsTheSocketsTimeNotTheReaders(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "2000")
		w.Write(make([]byte, 1000))
		w.(http.Flusher).Flush()
		time.Sleep(300 * time.Millisecond)
		w.Write(make([]byte, 1000))
	}))
	defer srv.Close()
	hc := newArrivalClient()
	defer hc.CloseIdleConnections()
	// The kernel turns receive stamps on a little after the first socket
	// asks for them: a first request, unmeasured, as the herd's connection
	// warm-up is.
	if resp, err := hc.Get(srv.URL); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	time.Sleep(100 * time.Millisecond)
	for round := range 2 { // both on the warmed connection
		var trace arrivalTrace
		req, _ := http.NewRequestWithContext(trace.context(context.Background()), http.MethodGet, srv.URL, nil)
		start := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(600 * time.Millisecond) // a slow reader: both halves wait in the socket
		if n, err := io.Copy(io.Discard, resp.Body); err != nil || n != 2000 {
			t.Fatalf("round %d: %d bytes, %v", round, n, err)
		}
		resp.Body.Close()
		first, second := trace.bodyByte(resp, 0), trace.bodyByte(resp, 1500)
		if first.IsZero() || second.IsZero() {
			t.Fatalf("round %d: arrivals unknown: %v %v", round, first, second)
		}
		if d := first.Sub(start); d < 0 || d > 200*time.Millisecond {
			t.Errorf("round %d: first byte arrived %v after the request, want well before the 600 ms read", round, d)
		}
		if d := second.Sub(first); d < 250*time.Millisecond || d > 550*time.Millisecond {
			t.Errorf("round %d: byte 1500 arrived %v after byte 0, want about the server's 300 ms pause", round, d)
		}
	}
}
