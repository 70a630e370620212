package cache

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

// At most bigCopyStreams long reads hold a big buffer at once; the next
// one, and every short one, gets a small one; a returned big buffer is
// lent again rather than a new one made.
func TestCopyBuffersLendBoundedBigBuffers(t *testing.T) {
	b := newCopyBuffers()
	var puts []func()
	first := map[*byte]bool{}
	for range bigCopyStreams {
		buf, put := b.get(bigCopy)
		if len(buf) != bigCopy {
			t.Fatalf("long read got %d bytes, want a %d-byte buffer", len(buf), bigCopy)
		}
		first[&buf[0]] = true
		puts = append(puts, put)
	}
	buf, put := b.get(bigCopy)
	if len(buf) != copyBuffer {
		t.Fatalf("long read %d, over the bound, got %d bytes, want %d", bigCopyStreams+1, len(buf), copyBuffer)
	}
	put()
	if buf, put := b.get(copyBuffer); len(buf) != copyBuffer {
		t.Fatalf("a %d-byte range got %d bytes, want the small buffer", copyBuffer, len(buf))
	} else {
		put()
	}
	puts[0]()
	buf, put = b.get(bigCopy)
	if len(buf) != bigCopy || !first[&buf[0]] {
		t.Fatalf("after one came back, got %d bytes (reused: %v), want a returned big buffer", len(buf), first[&buf[0]])
	}
	put()
	for _, put := range puts[1:] {
		put()
	}
	if b.lent != 0 {
		t.Fatalf("%d big buffers still counted out after all came back", b.lent)
	}
}

// copyRange sends exactly the range, in writes no longer than the buffer,
// whichever buffer it gets.
func TestCopyRangeSendsTheRange(t *testing.T) {
	data := make([]byte, 5*bigCopy+12345)
	for i := range data {
		data[i] = byte(rand.Uint32())
	}
	b := newCopyBuffers()
	for _, tc := range []struct{ off, n int64 }{
		{0, int64(len(data))},
		{1, int64(len(data)) - 1},
		{bigCopy - 7, 3*bigCopy + 11},
		{100, copyBuffer},
		{int64(len(data)) - 1, 1},
		{17, 0},
	} {
		var out writeLog
		n, err := b.copyRange(&out, bytes.NewReader(data), tc.off, tc.n)
		if err != nil || n != tc.n {
			t.Fatalf("range %d+%d: %d bytes, %v", tc.off, tc.n, n, err)
		}
		if !bytes.Equal(out.Bytes(), data[tc.off:tc.off+tc.n]) {
			t.Fatalf("range %d+%d: wrong bytes", tc.off, tc.n)
		}
		if out.largest > bigCopy {
			t.Fatalf("range %d+%d: a write of %d bytes", tc.off, tc.n, out.largest)
		}
	}
}

// A file shorter than the range is an error, never a short success.
func TestCopyRangePastTheEndFails(t *testing.T) {
	data := make([]byte, 3*bigCopy)
	var out writeLog
	n, err := newCopyBuffers().copyRange(&out, bytes.NewReader(data), bigCopy, 3*bigCopy)
	if !errors.Is(err, io.ErrUnexpectedEOF) || n != 2*bigCopy {
		t.Fatalf("got %d bytes, %v; want %d and an unexpected EOF", n, err, 2*bigCopy)
	}
}

type writeLog struct {
	bytes.Buffer
	largest int
}

func (w *writeLog) Write(p []byte) (int, error) {
	w.largest = max(w.largest, len(p))
	return w.Buffer.Write(p)
}
