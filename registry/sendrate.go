package registry

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"
)

// SendFloor closes the connection of a client that reads response bodies
// slower than a floor rate: a reader that stalls must not hold what its
// response holds (a lent copy buffer, an eviction guard, a connection)
// forever. Safe for concurrent use.
//
// It is a token bucket on write deadlines, set through
// http.ResponseController: a response may fall at most one window behind
// the floor. Each write goes out under a deadline of the credit left plus
// the time the write's own bytes take at the floor rate, and its bytes
// earn that time back, up to one window of credit. So a client that reads
// at the rate or faster is never cut, whatever the body's size; one that
// stops reading is cut at most a window plus one write's worth of time at
// the rate after its last progress. Writes go out whole up to MaxPiece
// (the cache's largest copy buffer): on loopback, splitting them into
// 30 KiB pieces cost 30-45% of warm throughput. Time between writes (the handler waiting for a fill)
// costs the client nothing, and no deadline stays armed between writes.
type SendFloor struct {
	rate   int64 // bytes a second
	window time.Duration
	piece  int // most bytes written under one deadline
}

// MaxPiece is the most bytes written under one deadline (more when the
// floor's bucket, rate*window, is larger): a stopped client holds its
// response for at most the window plus MaxPiece at the floor rate.
const MaxPiece = 2 << 20

// NewSendFloor returns a floor of rate bytes a second over window; a rate
// of 0 keeps no floor.
func NewSendFloor(rate int64, window time.Duration) (*SendFloor, error) {
	if rate < 0 || (rate > 0 && window <= 0) {
		return nil, fmt.Errorf("registry: a send floor needs a rate >= 0 and a window > 0, got %d over %s", rate, window)
	}
	bucket := float64(rate) * window.Seconds()
	return &SendFloor{rate: rate, window: window, piece: int(max(MaxPiece, min(bucket/2, 1<<30)))}, nil
}

// Wrap returns h with every response written under the floor (h itself
// when there is none).
func (f *SendFloor) Wrap(h http.Handler) http.Handler {
	if f.rate == 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fw := &floorWriter{ResponseWriter: w, rc: http.NewResponseController(w), f: f, credit: f.window}
		defer fw.finish()
		h.ServeHTTP(fw, r)
	})
}

// errTooSlow names why a write failed (it wraps the deadline's error).
var errTooSlow = errors.New("client reads slower than the minimum send rate")

// floorWriter is one response under the floor. net/http clears the
// connection's write deadline after each response, so nothing set here
// reaches the next request on the connection.
type floorWriter struct {
	http.ResponseWriter
	rc     *http.ResponseController
	f      *SendFloor
	credit time.Duration // how far the client may still fall behind
	wrote  bool          // a deadline is set
	off    bool          // the connection has no deadlines (a recorder): write as is
}

func (w *floorWriter) Write(p []byte) (int, error) {
	if w.off {
		return w.ResponseWriter.Write(p)
	}
	written := 0
	for len(p) > 0 {
		k := min(len(p), w.f.piece)
		start := time.Now()
		own := time.Duration(int64(k) * int64(time.Second) / w.f.rate) // what k bytes take at the floor
		if err := w.rc.SetWriteDeadline(start.Add(w.credit + own)); err != nil {
			w.off = true
			n, err := w.ResponseWriter.Write(p)
			return written + n, err
		}
		w.wrote = true
		n, err := w.ResponseWriter.Write(p[:k])
		// No deadline stays armed between writes: over HTTP/2 a deadline
		// is a timer that resets the stream when it fires, even while the
		// handler only waits (for a fill).
		_ = w.rc.SetWriteDeadline(time.Time{})
		written += n
		w.credit = min(w.credit-time.Since(start)+time.Duration(int64(n)*int64(time.Second)/w.f.rate), w.f.window)
		if w.credit < 0 {
			w.credit = 0
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				err = fmt.Errorf("%w: %w", errTooSlow, err)
			}
			return written, err
		}
		p = p[k:]
	}
	return written, nil
}

// finish flushes what the handler left buffered under the credit left,
// counted from now (the handler's own time after its last write is not
// the client's), and leaves no deadline armed.
func (w *floorWriter) finish() {
	if w.wrote && !w.off {
		_ = w.rc.SetWriteDeadline(time.Now().Add(max(w.credit, 0)))
		_ = w.rc.Flush()
		_ = w.rc.SetWriteDeadline(time.Time{})
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *floorWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
