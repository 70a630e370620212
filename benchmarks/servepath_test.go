package benchmarks

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// BenchmarkServePath compares ways to send a committed file over a
// loopback connection, side by side in one run: sendfile (net/http's
// ReaderFrom path, taken for an *os.File) and buffered copies that read
// the file with pread and write each read whole, through 128 KiB buffers
// (what fills' readers and short ranges use) and 2 MiB buffers (what long
// warm reads borrow, cache/copybuf.go). One client reading in 256 KiB
// steps, as the harness's clients do; a 64 MiB file.
func BenchmarkServePath(b *testing.B) {
	const size = 64 << 20
	path := filepath.Join(b.TempDir(), "blob")
	if err := os.WriteFile(path, randomBlob(b, size), 0o444); err != nil {
		b.Fatal(err)
	}
	copyWith := func(bufSize int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			f, err := os.Open(path)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			defer f.Close()
			buf := make([]byte, bufSize)
			w.Header().Set("Content-Length", strconv.Itoa(size))
			for off := int64(0); off < size; {
				n, err := f.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
				if _, werr := w.Write(buf[:n]); werr != nil {
					return
				}
				off += int64(n)
				if err != nil && off < size {
					return
				}
			}
		}
	}
	paths := map[string]http.HandlerFunc{
		"sendfile": func(w http.ResponseWriter, r *http.Request) {
			f, err := os.Open(path)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			defer f.Close()
			http.ServeContent(w, r, "", time.Time{}, f)
		},
		"copy_128KiB": copyWith(128 << 10),
		"copy_2MiB":   copyWith(2 << 20),
	}
	for _, name := range []string{"sendfile", "copy_128KiB", "copy_2MiB"} {
		b.Run(name, func(b *testing.B) {
			srv := httptest.NewServer(paths[name])
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
				var n int64
				for {
					k, err := resp.Body.Read(buf)
					n += int64(k)
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				resp.Body.Close()
				if n != size {
					b.Fatalf("got %d bytes", n)
				}
			}
		})
	}
}
