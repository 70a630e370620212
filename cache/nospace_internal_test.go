package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-mirror/cairn/internal/oci"
)

// dropAfter is a body that fails after n bytes (a reset mid-body).
type dropAfter struct {
	r io.Reader
	n int
}

func (d *dropAfter) Read(p []byte) (int, error) {
	if d.n <= 0 {
		return 0, errors.New("connection reset")
	}
	k, err := d.r.Read(p[:min(len(p), d.n)])
	d.n -= k
	return k, err
}

func (d *dropAfter) Close() error { return nil }

// uncachedRead, the path of readers of a fill that found the disk full,
// reached directly: every window is served exactly, from any position,
// with or without the dead fill's temp file, and whatever the source does
// wrong ends the response before the window's last byte.
func TestUncachedRead(t *testing.T) {
	c, ns := newTestCache(t)
	data := make([]byte, 1<<20+17)
	for i := range data {
		data[i] = byte(i * 7 / 5)
	}
	dgst := dig(data)
	const written = 300_000 // what the dead fill had written
	tmp := filepath.Join(t.TempDir(), "tmp")
	if err := os.WriteFile(tmp, data[:written], 0o600); err != nil {
		t.Fatal(err)
	}
	size := int64(len(data))

	type source struct {
		ignoreRange bool
		drops       int  // bodies that reset after 64 KiB
		flip        bool // one wrong byte past the written head
	}
	tests := []struct {
		name      string
		src       source
		prefix    bool
		pos, end  int64
		wantErr   bool
		wantOpens int
	}{
		{"whole, no temp file", source{}, false, 0, size, false, 1},
		{"follower from its position", source{}, true, 200_000, size, false, 1},
		{"window ending early", source{}, true, 1000, 5001, false, 1},
		{"window past the written head", source{}, true, 900_000, 950_000, false, 1},
		{"source ignores Range", source{ignoreRange: true}, true, 250_000, size, false, 1},
		{"source resets twice", source{drops: 2}, true, 250_000, size, false, 3},
		{"source sends a wrong byte", source{flip: true}, true, 250_000, size, true, 1},
		{"wrong byte past a short window", source{flip: true}, true, 100, 201, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opens := 0
			src := fnSource(func(ctx context.Context, off int64) (*oci.RemoteBlob, error) {
				opens++
				if tt.src.ignoreRange {
					off = 0
				}
				body := append([]byte(nil), data[off:]...)
				if tt.src.flip {
					body[len(body)-100] ^= 1
				}
				var r io.ReadCloser = io.NopCloser(bytes.NewReader(body))
				if opens <= tt.src.drops {
					r = &dropAfter{r: bytes.NewReader(body), n: 64 << 10}
				}
				return &oci.RemoteBlob{Body: r, Offset: off, Size: size - off}, nil
			})
			f := newFill(repo, dgst, src, ns.FillIdleTimeout)
			var prefix *os.File
			if tt.prefix {
				var err error
				if prefix, err = os.Open(tmp); err != nil {
					t.Fatal(err)
				}
			}
			var out bytes.Buffer
			n, err := c.uncachedRead(t.Context(), f, size, prefix, written, &out, tt.pos, tt.end)
			want := data[tt.pos:tt.end]
			switch {
			case tt.wantErr && err == nil:
				t.Fatalf("a wrong byte from the source: no error, %d bytes", n)
			case tt.wantErr && out.Len() >= len(want):
				// (What was sent may hold the wrong byte: a client never
				// gets a bad blob whole, as with any fill.)
				t.Errorf("a wrong byte from the source: sent %d of %d bytes, want the response cut short", out.Len(), len(want))
			case !tt.wantErr && err != nil:
				t.Fatalf("uncachedRead: %v", err)
			case !tt.wantErr && (n != int64(len(want)) || !bytes.Equal(out.Bytes(), want)):
				t.Errorf("sent %d bytes (returned %d), want data[%d:%d]", out.Len(), n, tt.pos, tt.end)
			}
			if opens != tt.wantOpens {
				t.Errorf("source opened %d times, want %d", opens, tt.wantOpens)
			}
			if prefix != nil {
				if _, err := prefix.Stat(); err == nil {
					t.Error("the temp file is still open: its space is not given back")
				}
			}
		})
	}
}

// A client that leaves stops an uncached read at once: no retries.
func TestUncachedReadClientGone(t *testing.T) {
	c, ns := newTestCache(t)
	data := bytes.Repeat([]byte("z"), 1<<20)
	opens := 0
	src := fnSource(func(ctx context.Context, off int64) (*oci.RemoteBlob, error) {
		opens++
		return &oci.RemoteBlob{Body: io.NopCloser(bytes.NewReader(data[off:])), Offset: off, Size: int64(len(data)) - off}, nil
	})
	f := newFill(repo, dig(data), src, ns.FillIdleTimeout)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := c.uncachedRead(ctx, f, int64(len(data)), nil, 0, failingWriter{}, 0, int64(len(data)))
	if err == nil || opens != 1 {
		t.Errorf("client gone: err %v after %d opens, want an error after 1", err, opens)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, fmt.Errorf("broken pipe") }
