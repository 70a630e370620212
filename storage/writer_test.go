package storage

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cairn-mirror/cairn/internal/testdisk"
)

func TestCommitRoundTrip(t *testing.T) {
	body := bytes.Repeat([]byte("cairn layer bytes "), 10_000)
	sum512 := sha512.Sum512(body)
	tests := []struct {
		name   string
		digest string
		size   int64
	}{
		{"sha256 known size", digestOf(body), int64(len(body))},
		{"sha256 unknown size", digestOf(body), -1},
		{"sha512", "sha512:" + hex.EncodeToString(sum512[:]), int64(len(body))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, t.TempDir())
			w, err := s.NewWriter(tt.digest, tt.size)
			if err != nil {
				t.Fatalf("NewWriter: %v", err)
			}
			for chunk := range slices.Chunk(body, 4096) {
				if _, err := w.Write(chunk); err != nil {
					t.Fatalf("Write: %v", err)
				}
			}
			if got, want := w.Written(), int64(len(body)); got != want {
				t.Errorf("Written() = %d, want %d", got, want)
			}
			info, err := w.Commit(KindLayer, "application/vnd.oci.image.layer.v1.tar+gzip")
			if err != nil {
				t.Fatalf("Commit: %v", err)
			}
			checkCommitted(t, s, tt.digest, body, info)
			if _, err := w.ReadAt(make([]byte, 1), 0); !errors.Is(err, os.ErrClosed) {
				t.Errorf("ReadAt after Commit: got %v, want os.ErrClosed", err)
			}
			if err := w.Abort(); err != nil {
				t.Errorf("Abort after Commit: %v", err)
			}
		})
	}
}

// checkCommitted asserts the committed blob's bytes, file mode and metadata.
func checkCommitted(t *testing.T, s *Store, digest string, body []byte, info BlobInfo) {
	t.Helper()
	f, got, err := s.OpenBlob(digest)
	if err != nil {
		t.Fatalf("OpenBlob: %v", err)
	}
	defer f.Close()
	read, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(read, body) {
		t.Errorf("read back %d bytes, want the %d written", len(read), len(body))
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fi.Mode().Perm(), os.FileMode(0o444); got != want {
		t.Errorf("file mode = %v, want %v", got, want)
	}
	want := BlobInfo{Digest: digest, Size: int64(len(body)), Kind: KindLayer,
		MediaType: "application/vnd.oci.image.layer.v1.tar+gzip"}
	if got.Digest != want.Digest || got.Size != want.Size || got.Kind != want.Kind || got.MediaType != want.MediaType {
		t.Errorf("OpenBlob info = %+v, want %+v", got, want)
	}
	if got.Created.IsZero() || !got.Created.Equal(info.Created) {
		t.Errorf("Created = %v, want %v (as returned by Commit), non-zero", got.Created, info.Created)
	}
	if n := len(dirEntries(t, filepath.Join(s.DataDir(), tmpDir))); n != 0 {
		t.Errorf("tmp/ holds %d files after Commit, want 0", n)
	}
}

func TestCommitRejects(t *testing.T) {
	body := []byte("some blob content")
	other := []byte("other content")
	tests := []struct {
		name     string
		digest   string
		size     int64
		write    []byte
		wantErr  error
		whenFail string // "write" or "commit"
	}{
		{"wrong digest", digestOf(other), int64(len(body)), body, ErrDigestMismatch, "commit"},
		{"wrong digest unknown size", digestOf(other), -1, body, ErrDigestMismatch, "commit"},
		{"too few bytes", digestOf(body), int64(len(body)) + 1, body, ErrSizeMismatch, "commit"},
		{"too many bytes", digestOf(body), int64(len(body)) - 1, body, ErrSizeMismatch, "write"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, t.TempDir())
			w, err := s.NewWriter(tt.digest, tt.size)
			if err != nil {
				t.Fatalf("NewWriter: %v", err)
			}
			_, werr := w.Write(tt.write)
			_, cerr := w.Commit(KindLayer, "")
			err = cerr
			if tt.whenFail == "write" {
				err = werr
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("%s error = %v, want %v", tt.whenFail, err, tt.wantErr)
			}
			if cerr == nil {
				t.Errorf("Commit succeeded, want an error")
			}
			checkNothingCommitted(t, s, tt.digest)
		})
	}
}

func checkNothingCommitted(t *testing.T, s *Store, digest string) {
	t.Helper()
	if files := dirEntries(t, filepath.Join(s.DataDir(), blobsDir)); len(files) != 0 {
		t.Errorf("blobs/ holds %v, want nothing", files)
	}
	if files := dirEntries(t, filepath.Join(s.DataDir(), tmpDir)); len(files) != 0 {
		t.Errorf("tmp/ holds %v, want nothing", files)
	}
	if _, err := s.Stat(digest); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat: got %v, want ErrNotFound", err)
	}
}

func TestConcurrentWritersSameDigest(t *testing.T) {
	s := openStore(t, t.TempDir())
	body := bytes.Repeat([]byte("x"), 1<<20)
	d := digestOf(body)
	const writers = 8
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Go(func() {
			w, err := s.NewWriter(d, int64(len(body)))
			if err != nil {
				errs[i] = err
				return
			}
			defer w.Abort()
			for chunk := range slices.Chunk(body, 64<<10) {
				if _, err := w.Write(chunk); err != nil {
					errs[i] = err
					return
				}
			}
			_, errs[i] = w.Commit(KindLayer, "application/vnd.oci.image.layer.v1.tar+gzip")
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("writer %d: %v", i, err)
		}
	}
	info, err := s.Stat(d)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	checkCommitted(t, s, d, body, info)
}

func TestWriterReadAtFollowsWrites(t *testing.T) {
	s := openStore(t, t.TempDir())
	body := []byte("0123456789")
	w, err := s.NewWriter(digestOf(body), -1)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if _, err := w.Write(body[:6]); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		off     int64
		n       int
		want    string
		wantEOF bool
	}{
		{0, 4, "0123", false},
		{2, 4, "2345", false},
		{4, 4, "45", true},
		{6, 4, "", true},
		{9, 1, "", true},
	}
	for _, tt := range tests {
		p := make([]byte, tt.n)
		n, err := w.ReadAt(p, tt.off)
		if got := string(p[:n]); got != tt.want {
			t.Errorf("ReadAt(%d, off %d) = %q, want %q", tt.n, tt.off, got, tt.want)
		}
		if gotEOF := errors.Is(err, io.EOF); gotEOF != tt.wantEOF || (err != nil && !gotEOF) {
			t.Errorf("ReadAt(%d, off %d) error = %v, want EOF %v", tt.n, tt.off, err, tt.wantEOF)
		}
	}
}

func TestAbort(t *testing.T) {
	s := openStore(t, t.TempDir())
	body := []byte("aborted")
	w, err := s.NewWriter(digestOf(body), -1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(body); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := w.Abort(); err != nil {
			t.Errorf("Abort #%d: %v", i+1, err)
		}
	}
	if _, err := w.Commit(KindLayer, ""); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Commit after Abort: got %v, want os.ErrClosed", err)
	}
	if _, err := w.Write(body); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Write after Abort: got %v, want os.ErrClosed", err)
	}
	checkNothingCommitted(t, s, digestOf(body))
}

func TestInvalidDigests(t *testing.T) {
	s := openStore(t, t.TempDir())
	good := strings.Repeat("a", 64)
	tests := []struct {
		name   string
		digest string
	}{
		{"empty", ""},
		{"no algorithm", good},
		{"uppercase hex", "sha256:" + strings.ToUpper(good)},
		{"short", "sha256:" + good[:63]},
		{"long", "sha256:" + good + "a"},
		{"sha512 with 64 hex", "sha512:" + good},
		{"unknown algorithm", "md5:" + good[:32]},
		{"uppercase algorithm", "SHA256:" + good},
		{"path traversal", "sha256:../../x"},
		{"traversal padded to length", "sha256:../../" + good[:58]},
		{"non-hex", "sha256:" + good[:63] + "g"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.NewWriter(tt.digest, -1); !errors.Is(err, ErrInvalidDigest) {
				t.Errorf("NewWriter: got %v, want ErrInvalidDigest", err)
			}
			if _, err := s.Stat(tt.digest); !errors.Is(err, ErrInvalidDigest) {
				t.Errorf("Stat: got %v, want ErrInvalidDigest", err)
			}
			if _, _, err := s.OpenBlob(tt.digest); !errors.Is(err, ErrInvalidDigest) {
				t.Errorf("OpenBlob: got %v, want ErrInvalidDigest", err)
			}
			if _, err := s.PutManifest(tt.digest, "", []byte("{}"), testFill); !errors.Is(err, ErrInvalidDigest) {
				t.Errorf("PutManifest: got %v, want ErrInvalidDigest", err)
			}
			if err := s.Link("docker.io", "library/alpine", tt.digest, LinkServed); !errors.Is(err, ErrInvalidDigest) {
				t.Errorf("Link: got %v, want ErrInvalidDigest", err)
			}
			if _, err := s.PutTag("docker.io", "library/alpine", "latest", TagRecord{Digest: tt.digest}); !errors.Is(err, ErrInvalidDigest) {
				t.Errorf("PutTag: got %v, want ErrInvalidDigest", err)
			}
		})
	}
}

func TestOpenReaderSurvivesCommit(t *testing.T) {
	s := openStore(t, t.TempDir())
	body := []byte("followed while it is written")
	d := digestOf(body)
	w, err := s.NewWriter(d, int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(body[:10]); err != nil {
		t.Fatal(err)
	}
	r, err := w.OpenReader()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := w.Write(body[10:]); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(KindLayer, ""); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(body))
	if _, err := r.ReadAt(got, 0); err != nil || string(got) != string(body) {
		t.Errorf("read after commit: %q, %v; want %q", got, err, body)
	}
	if _, err := w.OpenReader(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("OpenReader after Commit: %v, want os.ErrClosed", err)
	}
}

// A large write that the file takes only in part (a full tmpfs) leaves the
// hash over exactly the bytes written, as the fill's retry after eviction
// needs.
func TestShortWriteHashesOnlyWhatWasWritten(t *testing.T) {
	dir := t.TempDir()
	testdisk.Mount(t, dir, "size=1m")
	f, err := os.Create(filepath.Join(dir, "blob"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := make([]byte, 3<<20) // more than the tmpfs holds
	for i := range p {
		p[i] = byte(i * 7)
	}
	d, _ := parseDigest("sha256:" + strings.Repeat("0", 64))
	w := &Writer{s: &Store{}, d: d, size: -1, h: d.newHash(), f: f}
	n, err := w.Write(p)
	if err == nil || n <= 0 || n >= len(p) {
		t.Fatalf("Write of %d bytes into a 1 MiB tmpfs: n=%d err=%v, want a short write and an error", len(p), n, err)
	}
	want := sha256.Sum256(p[:n])
	if got := w.h.Sum(nil); !bytes.Equal(got, want[:]) {
		t.Errorf("after a short write of %d bytes the hash is %x, want the hash of those bytes %x", n, got, want)
	}
	if w.Written() != int64(n) {
		t.Errorf("Written() = %d, want %d", w.Written(), n)
	}
}
