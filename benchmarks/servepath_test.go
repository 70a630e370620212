package benchmarks

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// BenchmarkServePath compares the two ways to send a committed file over a
// loopback connection, side by side in one run: sendfile (net/http's
// ReaderFrom path, taken for an *os.File) and the pooled buffered copy the
// cache uses (an io.SectionReader through a 128 KiB buffer). One client, a
// 64 MiB file.
func BenchmarkServePath(b *testing.B) {
	const size = 64 << 20
	path := filepath.Join(b.TempDir(), "blob")
	if err := os.WriteFile(path, randomBlob(b, size), 0o444); err != nil {
		b.Fatal(err)
	}
	pool := sync.Pool{New: func() any { buf := make([]byte, 128<<10); return &buf }}
	paths := map[string]http.HandlerFunc{
		"sendfile": func(w http.ResponseWriter, r *http.Request) {
			f, _ := os.Open(path)
			defer f.Close()
			http.ServeContent(w, r, "", time.Time{}, f)
		},
		"pooled_copy": func(w http.ResponseWriter, r *http.Request) {
			f, _ := os.Open(path)
			defer f.Close()
			buf := pool.Get().(*[]byte)
			defer pool.Put(buf)
			w.Header().Set("Content-Length", "67108864")
			io.CopyBuffer(writerOnly{w}, io.NewSectionReader(f, 0, size), *buf)
		},
	}
	for _, name := range []string{"sendfile", "pooled_copy"} {
		b.Run(name, func(b *testing.B) {
			srv := httptest.NewServer(paths[name])
			defer srv.Close()
			b.SetBytes(size)
			for b.Loop() {
				resp, err := http.Get(srv.URL)
				if err != nil {
					b.Fatal(err)
				}
				if n, _ := io.Copy(io.Discard, resp.Body); n != size {
					b.Fatalf("got %d bytes", n)
				}
				resp.Body.Close()
			}
		})
	}
}

// writerOnly hides the ResponseWriter's ReadFrom, as the registry's own
// response wrapper does, so the copy really goes through the buffer.
type writerOnly struct{ io.Writer }
