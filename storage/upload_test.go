package storage

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/dgraph-io/badger/v4"
)

const layerType = "application/vnd.oci.image.layer.v1.tar+gzip"

func sha512Of(b []byte) string {
	sum := sha512.Sum512(b)
	return "sha512:" + hex.EncodeToString(sum[:])
}

// startUpload starts a session in docker.io/library/alpine.
func startUpload(t *testing.T, s *Store) Upload {
	t.Helper()
	u, err := s.NewUpload("docker.io", "library/alpine", "", UploadLimits{})
	if err != nil {
		t.Fatalf("NewUpload: %v", err)
	}
	return u
}

// appendAll appends body to session id in chunks of at most n bytes,
// starting at offset at, checking the offset after each.
func appendAll(t *testing.T, s *Store, id string, at int64, body []byte, n int) {
	t.Helper()
	for chunk := range slices.Chunk(body, n) {
		u, err := s.AppendUpload(id, at, bytes.NewReader(chunk))
		if err != nil {
			t.Fatalf("AppendUpload(offset %d): %v", at, err)
		}
		at += int64(len(chunk))
		if u.Offset != at {
			t.Fatalf("AppendUpload returned offset %d, want %d", u.Offset, at)
		}
	}
}

// checkOffset asserts the recorded offset of session id and the size of
// its file.
func checkOffset(t *testing.T, s *Store, id string, want int64) {
	t.Helper()
	u, err := s.UploadStatus(id)
	if err != nil {
		t.Fatalf("UploadStatus: %v", err)
	}
	if u.Offset != want {
		t.Errorf("UploadStatus offset = %d, want %d", u.Offset, want)
	}
	if fi, err := os.Stat(s.uploadPath(id)); err != nil || fi.Size() != want {
		t.Errorf("upload file: %v, %v; want %d bytes", fi, err, want)
	}
}

// checkUploadGone asserts that session id has neither record nor file.
func checkUploadGone(t *testing.T, s *Store, id string) {
	t.Helper()
	if _, err := s.UploadStatus(id); !errors.Is(err, ErrUploadUnknown) {
		t.Errorf("UploadStatus = %v, want ErrUploadUnknown", err)
	}
	if _, err := os.Stat(s.uploadPath(id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("upload file: stat error %v, want not exist", err)
	}
	keys, err := s.keysUnder([]byte(uploadPrefix))
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(keys, id) {
		t.Errorf("upload/%s record still present", id)
	}
}

func TestUploadMonolithic(t *testing.T) {
	body := bytes.Repeat([]byte("pushed layer "), 20_000)
	tests := []struct {
		name   string
		body   []byte
		digest string
	}{
		{"sha256", body, digestOf(body)},
		{"sha512", body, sha512Of(body)},
		{"empty", nil, digestOf(nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, t.TempDir())
			u := startUpload(t, s)
			if u.Offset != 0 || u.Namespace != "docker.io" || u.Repo != "library/alpine" || u.Started.IsZero() {
				t.Errorf("NewUpload = %+v, want offset 0 in docker.io library/alpine, started", u)
			}
			got, err := s.AppendUpload(u.ID, 0, bytes.NewReader(tt.body))
			if err != nil || got.Offset != int64(len(tt.body)) {
				t.Fatalf("AppendUpload = %+v, %v; want offset %d", got, err, len(tt.body))
			}
			info, err := s.CommitUpload(u.ID, tt.digest, KindLayer, layerType)
			if err != nil {
				t.Fatalf("CommitUpload: %v", err)
			}
			checkCommitted(t, s, tt.digest, tt.body, info)
			checkUploadGone(t, s, u.ID)
		})
	}
}

func TestUploadChunked(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 8192+3)
	for _, digest := range []string{digestOf(body), sha512Of(body)} {
		t.Run(digest[:6], func(t *testing.T) {
			s := openStore(t, t.TempDir())
			u := startUpload(t, s)
			var at int64
			for _, n := range []int{1, 7, 4096, 65536, 100} {
				if _, err := s.AppendUpload(u.ID, at, bytes.NewReader(body[at:at+int64(n)])); err != nil {
					t.Fatalf("AppendUpload(%d bytes at %d): %v", n, at, err)
				}
				at += int64(n)
				checkOffset(t, s, u.ID, at)
			}
			appendAll(t, s, u.ID, at, body[at:], 1000)
			info, err := s.CommitUpload(u.ID, digest, KindLayer, layerType)
			if err != nil {
				t.Fatalf("CommitUpload: %v", err)
			}
			checkCommitted(t, s, digest, body, info)
			checkUploadGone(t, s, u.ID)
		})
	}
}

func TestUploadWrongOffset(t *testing.T) {
	s := openStore(t, t.TempDir())
	u := startUpload(t, s)
	appendAll(t, s, u.ID, 0, []byte("hello"), 5)
	for _, off := range []int64{-1, 0, 4, 6, 1 << 40} {
		got, err := s.AppendUpload(u.ID, off, bytes.NewReader([]byte("junk")))
		if !errors.Is(err, ErrUploadOffset) {
			t.Errorf("AppendUpload at %d: %v, want ErrUploadOffset", off, err)
		}
		if got.ID != u.ID || got.Offset != 5 {
			t.Errorf("AppendUpload at %d returned %+v, want the session at offset 5", off, got)
		}
	}
	checkOffset(t, s, u.ID, 5)
	appendAll(t, s, u.ID, 5, []byte(" world"), 100)
	body := []byte("hello world")
	info, err := s.CommitUpload(u.ID, digestOf(body), KindLayer, layerType)
	if err != nil {
		t.Fatalf("CommitUpload: %v", err)
	}
	checkCommitted(t, s, digestOf(body), body, info)
}

func TestUploadStatus(t *testing.T) {
	s := openStore(t, t.TempDir())
	clk := newClock(s)
	u := startUpload(t, s)
	if len(u.ID) != 32 || !isLowerHex(u.ID, 32) {
		t.Errorf("ID %q, want 32 lowercase hex characters", u.ID)
	}
	clk.Advance(time.Minute)
	appendAll(t, s, u.ID, 0, []byte("abc"), 3)
	got, err := s.UploadStatus(u.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := Upload{ID: u.ID, Namespace: "docker.io", Repo: "library/alpine", Offset: 3,
		Started: u.Started, Updated: u.Started.Add(time.Minute)}
	if got != want {
		t.Errorf("UploadStatus = %+v, want %+v", got, want)
	}
}

func TestUploadIDsAreDistinct(t *testing.T) {
	s := openStore(t, t.TempDir())
	seen := make(map[string]bool)
	for range 50 {
		u := startUpload(t, s)
		if seen[u.ID] {
			t.Fatalf("NewUpload returned %s twice", u.ID)
		}
		seen[u.ID] = true
	}
}

func TestUploadRejects(t *testing.T) {
	s := openStore(t, t.TempDir())
	for _, names := range [][2]string{{"", "r"}, {"ns", ""}, {"ns", "a\x00b"}} {
		if _, err := s.NewUpload(names[0], names[1], "", UploadLimits{}); !errors.Is(err, ErrInvalidName) {
			t.Errorf("NewUpload(%q, %q) = %v, want ErrInvalidName", names[0], names[1], err)
		}
	}
	committed := startUpload(t, s)
	if _, err := s.CommitUpload(committed.ID, digestOf(nil), KindLayer, ""); err != nil {
		t.Fatal(err)
	}
	ids := []string{"", "../../node.json", "ABCDEF0123456789ABCDEF0123456789", "0123",
		"00000000000000000000000000000000", committed.ID}
	for _, id := range ids {
		if _, err := s.UploadStatus(id); !errors.Is(err, ErrUploadUnknown) {
			t.Errorf("UploadStatus(%q) = %v, want ErrUploadUnknown", id, err)
		}
		if _, err := s.AppendUpload(id, 0, bytes.NewReader(nil)); !errors.Is(err, ErrUploadUnknown) {
			t.Errorf("AppendUpload(%q) = %v, want ErrUploadUnknown", id, err)
		}
		if _, err := s.CommitUpload(id, digestOf(nil), KindLayer, ""); !errors.Is(err, ErrUploadUnknown) {
			t.Errorf("CommitUpload(%q) = %v, want ErrUploadUnknown", id, err)
		}
		if err := s.CancelUpload(id); !errors.Is(err, ErrUploadUnknown) {
			t.Errorf("CancelUpload(%q) = %v, want ErrUploadUnknown", id, err)
		}
	}
}

func TestUploadCancel(t *testing.T) {
	s := openStore(t, t.TempDir())
	u := startUpload(t, s)
	appendAll(t, s, u.ID, 0, []byte("to be cancelled"), 4)
	if err := s.CancelUpload(u.ID); err != nil {
		t.Fatalf("CancelUpload: %v", err)
	}
	checkUploadGone(t, s, u.ID)
	if err := s.CancelUpload(u.ID); !errors.Is(err, ErrUploadUnknown) {
		t.Errorf("second CancelUpload = %v, want ErrUploadUnknown", err)
	}
	checkNothingCommitted(t, s, digestOf([]byte("to be cancelled")))
}

func TestUploadCommitRejectsKeepSession(t *testing.T) {
	body := []byte("the real content")
	tests := []struct {
		name    string
		digest  string
		kind    Kind
		wantErr error
	}{
		{"sha256 mismatch", digestOf([]byte("other")), KindLayer, ErrDigestMismatch},
		{"sha512 mismatch", sha512Of([]byte("other")), KindLayer, ErrDigestMismatch},
		{"invalid digest", "sha256:1234", KindLayer, ErrInvalidDigest},
		{"unknown kind", digestOf(body), Kind("sculpture"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, t.TempDir())
			u := startUpload(t, s)
			appendAll(t, s, u.ID, 0, body, 5)
			_, err := s.CommitUpload(u.ID, tt.digest, tt.kind, layerType)
			if err == nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("CommitUpload = %v, want %v", err, tt.wantErr)
			}
			if files := dirEntries(t, filepath.Join(s.DataDir(), blobsDir)); len(files) != 0 {
				t.Errorf("blobs/ holds %v, want nothing", files)
			}
			// The session is intact: committing the right digest works.
			checkOffset(t, s, u.ID, int64(len(body)))
			info, err := s.CommitUpload(u.ID, digestOf(body), KindLayer, layerType)
			if err != nil {
				t.Fatalf("CommitUpload after a rejected commit: %v", err)
			}
			checkCommitted(t, s, digestOf(body), body, info)
		})
	}
}

func TestUploadFailedAppendKeepsOffset(t *testing.T) {
	errCut := errors.New("client went away")
	s := openStore(t, t.TempDir())
	u := startUpload(t, s)
	appendAll(t, s, u.ID, 0, []byte("first "), 100)
	readers := map[string]io.Reader{
		"read error": io.MultiReader(bytes.NewReader(bytes.Repeat([]byte("x"), 100_000)), iotest.ErrReader(errCut)),
		"timeout":    iotest.TimeoutReader(bytes.NewReader(bytes.Repeat([]byte("y"), 10))),
	}
	for name, r := range readers {
		got, err := s.AppendUpload(u.ID, 6, r)
		if err == nil || errors.Is(err, ErrUploadOffset) {
			t.Errorf("%s: AppendUpload = %v, want the read error", name, err)
		}
		if got.Offset != 6 {
			t.Errorf("%s: AppendUpload returned offset %d, want 6", name, got.Offset)
		}
		checkOffset(t, s, u.ID, 6)
	}
	appendAll(t, s, u.ID, 6, []byte("second"), 100)
	body := []byte("first second")
	info, err := s.CommitUpload(u.ID, digestOf(body), KindLayer, layerType)
	if err != nil {
		t.Fatalf("CommitUpload: %v", err)
	}
	checkCommitted(t, s, digestOf(body), body, info)
}

func TestUploadSurvivesRestart(t *testing.T) {
	body := bytes.Repeat([]byte("resumable "), 10_000)
	for _, digest := range []string{digestOf(body), sha512Of(body)} {
		t.Run(digest[:6], func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir)
			u := startUpload(t, s)
			appendAll(t, s, u.ID, 0, body[:60_000], 25_000)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openStore(t, dir)
			got, err := s.UploadStatus(u.ID)
			if err != nil {
				t.Fatalf("UploadStatus after restart: %v", err)
			}
			if got.Offset != 60_000 || got.Namespace != u.Namespace || got.Repo != u.Repo || !got.Started.Equal(u.Started) {
				t.Errorf("UploadStatus after restart = %+v, want %+v at offset 60000", got, u)
			}
			appendAll(t, s, u.ID, 60_000, body[60_000:], 25_000)
			info, err := s.CommitUpload(u.ID, digest, KindLayer, layerType)
			if err != nil {
				t.Fatalf("CommitUpload: %v", err)
			}
			checkCommitted(t, s, digest, body, info)
		})
	}
}

// TestUploadCrashStates puts an upload session in each state a crash (or a
// failed append) can leave it in, then resumes it, after a restart or
// straight away.
func TestUploadCrashStates(t *testing.T) {
	tests := []struct {
		name   string
		damage func(path string) error
		alive  bool // the session can go on
	}{
		{"file longer than record", func(p string) error { return appendToFile(p, []byte("unrecorded bytes")) }, true},
		{"record without file", os.Remove, false},
		{"file shorter than record", func(p string) error { return os.Truncate(p, 3) }, false},
	}
	for _, tt := range tests {
		for _, restart := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s restart=%v", tt.name, restart), func(t *testing.T) {
				dir := t.TempDir()
				s := openStore(t, dir)
				u := startUpload(t, s)
				appendAll(t, s, u.ID, 0, []byte("recorded"), 100)
				if restart {
					if err := s.Close(); err != nil {
						t.Fatal(err)
					}
				}
				if err := tt.damage(s.uploadPath(u.ID)); err != nil {
					t.Fatal(err)
				}
				if restart {
					s = openStore(t, dir)
				}
				_, err := s.AppendUpload(u.ID, 8, bytes.NewReader([]byte(" and more")))
				if !tt.alive {
					if !errors.Is(err, ErrUploadUnknown) {
						t.Errorf("AppendUpload = %v, want ErrUploadUnknown", err)
					}
					checkUploadGone(t, s, u.ID)
					return
				}
				if err != nil {
					t.Fatalf("AppendUpload: %v", err)
				}
				body := []byte("recorded and more")
				info, err := s.CommitUpload(u.ID, digestOf(body), KindLayer, layerType)
				if err != nil {
					t.Fatalf("CommitUpload: %v", err)
				}
				checkCommitted(t, s, digestOf(body), body, info)
			})
		}
	}
}

func appendToFile(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	return errors.Join(err, f.Close())
}

// TestOpenKeepsLiveUploads: Open empties tmp/ but for the files of live
// sessions, and cuts those to their recorded offset.
func TestOpenKeepsLiveUploads(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	live := startUpload(t, s)
	appendAll(t, s, live.ID, 0, []byte("live"), 100)
	empty := startUpload(t, s)
	w, err := s.NewWriter(digestOf([]byte("a fill")), -1) // a fill cut by the crash
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := appendToFile(s.uploadPath(live.ID), []byte("torn")); err != nil {
		t.Fatal(err)
	}
	strays := []string{uploadFilePrefix + "0123456789abcdef0123456789abcdef", uploadFilePrefix + "x", "other"}
	for _, name := range strays {
		if err := os.WriteFile(filepath.Join(dir, tmpDir, name), []byte("stray"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s = openStore(t, dir)
	var got []string
	for _, p := range dirEntries(t, filepath.Join(dir, tmpDir)) {
		got = append(got, filepath.Base(p))
	}
	want := []string{uploadFilePrefix + live.ID, uploadFilePrefix + empty.ID}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("tmp/ after Open holds %v, want %v", got, want)
	}
	checkOffset(t, s, live.ID, 4)
	checkOffset(t, s, empty.ID, 0)
}

func TestExpireUploads(t *testing.T) {
	s := openStore(t, t.TempDir())
	clk := newClock(s)
	t0 := clk.Now()
	idle := startUpload(t, s)
	busy := startUpload(t, s)
	clk.Advance(2 * time.Hour)
	appendAll(t, s, busy.ID, 0, []byte("still going"), 100)
	fresh := startUpload(t, s)

	n, err := s.ExpireUploads(t0.Add(time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("ExpireUploads(t0+1h) = %d, %v; want 1", n, err)
	}
	checkUploadGone(t, s, idle.ID)
	checkOffset(t, s, busy.ID, 11)
	checkOffset(t, s, fresh.ID, 0)
	if _, err := s.AppendUpload(idle.ID, 0, bytes.NewReader([]byte("late"))); !errors.Is(err, ErrUploadUnknown) {
		t.Errorf("AppendUpload to an expired session = %v, want ErrUploadUnknown", err)
	}

	n, err = s.ExpireUploads(t0.Add(3 * time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("ExpireUploads(t0+3h) = %d, %v; want 2", n, err)
	}
	checkUploadGone(t, s, busy.ID)
	checkUploadGone(t, s, fresh.ID)
}

// blockingReader signals its first Read, then blocks until released.
type blockingReader struct {
	started, release chan struct{}
	once             sync.Once
}

func (r *blockingReader) Read([]byte) (int, error) {
	r.once.Do(func() { close(r.started) })
	<-r.release
	return 0, io.EOF
}

func TestExpireUploadsSkipsSessionInUse(t *testing.T) {
	s := openStore(t, t.TempDir())
	clk := newClock(s)
	u := startUpload(t, s)
	clk.Advance(48 * time.Hour)
	r := &blockingReader{started: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error)
	go func() {
		_, err := s.AppendUpload(u.ID, 0, r)
		done <- err
	}()
	<-r.started
	n, err := s.ExpireUploads(clk.Now())
	close(r.release)
	if err := <-done; err != nil {
		t.Errorf("AppendUpload: %v", err)
	}
	if err != nil || n != 0 {
		t.Errorf("ExpireUploads during an append = %d, %v; want 0", n, err)
	}
	checkOffset(t, s, u.ID, 0)
}

func TestUploadConcurrentSessions(t *testing.T) {
	s := openStore(t, t.TempDir())
	const sessions = 8
	var wg sync.WaitGroup
	errs := make(chan error, sessions)
	for i := range sessions {
		body := bytes.Repeat([]byte(fmt.Sprintf("session %d ", i)), 5000+i)
		wg.Go(func() {
			errs <- pushChunks(s, body, 4096)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if _, blobs := s.Usage(); blobs != sessions {
		t.Errorf("Usage blobs = %d, want %d", blobs, sessions)
	}
}

// pushChunks pushes body through a new session in chunks of n bytes and
// checks the committed bytes.
func pushChunks(s *Store, body []byte, n int) error {
	u, err := s.NewUpload("hosted", "team/app", "", UploadLimits{})
	if err != nil {
		return err
	}
	var at int64
	for chunk := range slices.Chunk(body, n) {
		if _, err := s.AppendUpload(u.ID, at, bytes.NewReader(chunk)); err != nil {
			return err
		}
		at += int64(len(chunk))
	}
	if _, err := s.CommitUpload(u.ID, digestOf(body), KindLayer, layerType); err != nil {
		return err
	}
	f, _, err := s.OpenBlob(digestOf(body))
	if err != nil {
		return err
	}
	defer f.Close()
	got, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, body) {
		return fmt.Errorf("blob %s: read back %d bytes that differ from the %d pushed", digestOf(body), len(got), len(body))
	}
	return nil
}

// TestUploadConcurrentAppendsToOneSession: racing appends at the same
// offset are serialised; exactly one lands.
func TestUploadConcurrentAppendsToOneSession(t *testing.T) {
	s := openStore(t, t.TempDir())
	u := startUpload(t, s)
	const racers = 8
	chunk := bytes.Repeat([]byte("z"), 100_000)
	var wg sync.WaitGroup
	results := make(chan error, racers)
	for range racers {
		wg.Go(func() {
			_, err := s.AppendUpload(u.ID, 0, bytes.NewReader(chunk))
			results <- err
		})
	}
	wg.Wait()
	close(results)
	ok := 0
	for err := range results {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrUploadOffset):
			t.Errorf("AppendUpload = %v, want nil or ErrUploadOffset", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d appends at offset 0 succeeded, want 1", ok)
	}
	checkOffset(t, s, u.ID, int64(len(chunk)))
}

func TestUploadCommitPinsAndLinks(t *testing.T) {
	s := openStore(t, t.TempDir())
	body := []byte("pushed, never evicted")
	d := digestOf(body)
	// The upstream had served it to this repository: the push upgrades the link.
	if err := s.Link("docker.io", "library/alpine", d, LinkServed); err != nil {
		t.Fatal(err)
	}
	u := startUpload(t, s)
	appendAll(t, s, u.ID, 0, body, 100)
	if _, err := s.CommitUpload(u.ID, d, KindLayer, layerType); err != nil {
		t.Fatalf("CommitUpload: %v", err)
	}
	if pinned, err := s.Pinned(d); err != nil || !pinned {
		t.Errorf("Pinned = %v, %v; want true", pinned, err)
	}
	var link linkRecord
	if err := s.db.View(func(txn *badger.Txn) error {
		return getJSON(txn, linkKey("docker.io", "library/alpine", d), &link)
	}); err != nil || link.How != LinkPushed {
		t.Errorf("link = %+v, %v; want how=pushed", link, err)
	}
	if linked, _ := s.Linked("docker.io", "library/debian", d); linked {
		t.Errorf("Linked(another repo) = true, want false")
	}
	if evs, err := s.Evict(0, nil); err != nil || len(evs) != 0 {
		t.Errorf("Evict(0) = %v, %v; want nothing evicted", evs, err)
	}
	if err := s.Unpin(d, PushPinReason); err != nil {
		t.Fatal(err)
	}
	if evs, err := s.Evict(0, nil); err != nil || len(evs) != 1 {
		t.Errorf("Evict(0) after Unpin = %v, %v; want the blob evicted", evs, err)
	}
}

// newUserUpload starts a session of user under lim.
func newUserUpload(s *Store, user string, lim UploadLimits) (Upload, error) {
	return s.NewUpload("hosted", "team/app", user, lim)
}

// checkSessions asserts the open sessions of the node and of user.
func checkSessions(t *testing.T, s *Store, user string, total, ofUser int) {
	t.Helper()
	if gt, gu := s.UploadSessions(user); gt != total || gu != ofUser {
		t.Errorf("UploadSessions(%q) = %d in all, %d of the user; want %d, %d", user, gt, gu, total, ofUser)
	}
}

// A session past a limit is refused with nothing created, and every way a
// session ends (commit, cancel, expiry, a broken file) gives its place back.
func TestUploadSessionLimits(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	clk := newClock(s)
	lim := UploadLimits{Sessions: 4, PerUser: 2}
	var alice []Upload
	for range 2 {
		u, err := newUserUpload(s, "alice", lim)
		if err != nil {
			t.Fatalf("NewUpload(alice): %v", err)
		}
		alice = append(alice, u)
	}
	before := dirEntries(t, filepath.Join(dir, tmpDir))
	if _, err := newUserUpload(s, "alice", lim); !errors.Is(err, ErrTooManyUploads) {
		t.Fatalf("alice's third session: %v, want ErrTooManyUploads", err)
	}
	if after := dirEntries(t, filepath.Join(dir, tmpDir)); len(after) != len(before) {
		t.Errorf("a refused session left files: tmp/ holds %v, had %v", after, before)
	}
	bob, err := newUserUpload(s, "bob", lim)
	if err != nil {
		t.Fatalf("bob's first session: %v", err)
	}
	carol, err := newUserUpload(s, "carol", lim)
	if err != nil {
		t.Fatalf("carol's first session: %v", err)
	}
	if _, err := newUserUpload(s, "dave", lim); !errors.Is(err, ErrTooManyUploads) {
		t.Fatalf("a fifth session on the node: %v, want ErrTooManyUploads", err)
	}
	checkSessions(t, s, "alice", 4, 2)

	appendAll(t, s, alice[0].ID, 0, []byte("layer"), 100)
	if _, err := s.CommitUpload(alice[0].ID, digestOf([]byte("layer")), KindLayer, layerType); err != nil {
		t.Fatal(err)
	}
	checkSessions(t, s, "alice", 3, 1)
	if err := s.CancelUpload(bob.ID); err != nil {
		t.Fatal(err)
	}
	checkSessions(t, s, "bob", 2, 0)
	if err := os.Remove(s.uploadPath(carol.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendUpload(carol.ID, 0, bytes.NewReader([]byte("x"))); !errors.Is(err, ErrUploadUnknown) {
		t.Fatalf("append to a session whose file went: %v, want ErrUploadUnknown", err)
	}
	checkSessions(t, s, "carol", 1, 0)
	clk.Advance(time.Hour)
	if n, err := s.ExpireUploads(clk.Now()); err != nil || n != 1 {
		t.Fatalf("ExpireUploads = %d, %v; want 1", n, err)
	}
	checkSessions(t, s, "alice", 0, 0)
	for range 2 {
		if _, err := newUserUpload(s, "alice", lim); err != nil {
			t.Fatalf("alice's session after hers ended: %v", err)
		}
	}
}

// The counts survive a restart: rebuilt at Open from the records it keeps
// (a session dropped there as broken counts no more).
func TestUploadSessionCountsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	lim := UploadLimits{Sessions: 10, PerUser: 2}
	kept, err := newUserUpload(s, "alice", lim)
	if err != nil {
		t.Fatal(err)
	}
	broken, err := newUserUpload(s, "alice", lim)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newUserUpload(s, "bob", lim); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(s.uploadPath(broken.ID)); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	checkSessions(t, s, "alice", 2, 1)
	if got, err := s.UploadStatus(kept.ID); err != nil || got.User != "alice" {
		t.Fatalf("UploadStatus after restart = %+v, %v; want alice's session", got, err)
	}
	if _, err := newUserUpload(s, "alice", lim); err != nil {
		t.Fatalf("alice's second session after restart: %v", err)
	}
	if _, err := newUserUpload(s, "alice", lim); !errors.Is(err, ErrTooManyUploads) {
		t.Fatalf("alice's third session after restart: %v, want ErrTooManyUploads", err)
	}
}
