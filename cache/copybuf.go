package cache

import (
	"io"
	"sync"
)

// Warm blobs go to the client in large writes: on loopback, one stream
// sent in 2 MiB writes ran 1.2-1.8x faster than in 128 KiB writes, and
// faster still than by sendfile(2) (README, Performance: the harness and
// BenchmarkServePath). Large buffers cost memory, so at most
// bigCopyStreams reads hold one at a time; the rest share copyBuffer-sized
// ones from the pool, which is also what every range shorter than
// copyBuffer uses.
const (
	bigCopy        = 2 << 20
	bigCopyStreams = 16
)

// copyBuffers lends copy buffers: big ones while any are free, else the
// pooled small ones.
type copyBuffers struct {
	small sync.Pool // *[]byte of copyBuffer bytes

	mu   sync.Mutex
	big  [][]byte // returned big buffers
	lent int      // big buffers out
}

func newCopyBuffers() *copyBuffers {
	b := &copyBuffers{}
	b.small.New = func() any { buf := make([]byte, copyBuffer); return &buf }
	return b
}

// get returns a buffer for copying n bytes and the function that gives it
// back.
func (b *copyBuffers) get(n int64) ([]byte, func()) {
	if n > copyBuffer {
		b.mu.Lock()
		if b.lent < bigCopyStreams {
			b.lent++
			var buf []byte
			if k := len(b.big); k > 0 {
				buf, b.big = b.big[k-1], b.big[:k-1]
			}
			b.mu.Unlock()
			if buf == nil {
				buf = make([]byte, bigCopy)
			}
			return buf, func() { b.putBig(buf) }
		}
		b.mu.Unlock()
	}
	p := b.small.Get().(*[]byte)
	return *p, func() { b.small.Put(p) }
}

func (b *copyBuffers) putBig(buf []byte) {
	b.mu.Lock()
	b.lent--
	b.big = append(b.big, buf)
	b.mu.Unlock()
}

// copyRange copies n bytes of f from off to w through a lent buffer, each
// read written whole.
func (b *copyBuffers) copyRange(w io.Writer, f io.ReaderAt, off, n int64) (int64, error) {
	buf, put := b.get(n)
	defer put()
	var written int64
	for written < n {
		m, err := f.ReadAt(buf[:min(int64(len(buf)), n-written)], off+written)
		if m > 0 {
			k, werr := w.Write(buf[:m])
			written += int64(k)
			if werr != nil {
				return written, werr
			}
		}
		if err != nil && (err != io.EOF || written < n) {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return written, err
		}
	}
	return written, nil
}
