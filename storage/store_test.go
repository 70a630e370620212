package storage

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func TestOpenWritesNodeOnce(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, WithSite("eu-west"))
	first := s.Node()
	if !isLowerHex(first.NodeID, 32) || first.Site != "eu-west" {
		t.Fatalf("Node() = %+v, want a 32-hex id and site eu-west", first)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = openStore(t, dir, WithSite("elsewhere"))
	if got := s.Node(); got != first {
		t.Errorf("Node() after reopen = %+v, want %+v", got, first)
	}
	b, err := os.ReadFile(filepath.Join(dir, "node.json"))
	if err != nil {
		t.Fatal(err)
	}
	var onDisk NodeInfo
	if err := json.Unmarshal(b, &onDisk); err != nil || onDisk != first {
		t.Errorf("node.json = %s (%v), want %+v", b, err, first)
	}
	if got := s.DataDir(); got != dir {
		t.Errorf("DataDir() = %q, want %q", got, dir)
	}
}

func TestOpenDefaultSiteAndValidation(t *testing.T) {
	s := openStore(t, t.TempDir())
	if got, want := s.Node().Site, "default"; got != want {
		t.Errorf("default site = %q, want %q", got, want)
	}
	if _, err := Open(t.TempDir(), WithSite("")); err == nil {
		t.Errorf("Open with empty site succeeded, want an error")
	}
}

func TestOpenRecoversFromCrash(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	kept := commitBlob(t, s, []byte("kept"), KindConfig)
	lost := commitBlob(t, s, []byte("lost"), KindLayer)
	// A fill interrupted by the crash: a temp file and a nested leftover.
	w, err := s.NewWriter(digestOf([]byte("partial")), 7)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if _, err := w.Write([]byte("par")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, tmpDir, "upload-1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	p, _ := parseDigest(lost.Digest)
	if err := os.Remove(p.path(dir)); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, dir)
	if entries, _ := os.ReadDir(filepath.Join(dir, tmpDir)); len(entries) != 0 {
		t.Errorf("tmp/ after Open holds %d entries, want 0", len(entries))
	}
	if _, err := s.Stat(lost.Digest); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat(deleted blob) = %v, want ErrNotFound", err)
	}
	if got, err := s.Stat(kept.Digest); err != nil || got.Kind != KindConfig || got.Size != 4 {
		t.Errorf("Stat(kept blob) = %+v, %v; want kind config, size 4", got, err)
	}
}

func TestReopenKeepsState(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	layer := commitBlob(t, s, []byte("layer"), KindLayer)
	manifest := []byte(`{"schemaVersion":2,"layers":[{"digest":"` + layer.Digest + `"}]}`)
	md := digestOf(manifest)
	if _, err := s.PutManifest(md, "application/vnd.oci.image.manifest.v1+json", manifest, testFill); err != nil {
		t.Fatal(err)
	}
	if err := s.Link("docker.io", "library/alpine", md, LinkServed); err != nil {
		t.Fatal(err)
	}
	checked := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tag, err := s.PutTag("docker.io", "library/alpine", "3.20", TagRecord{Digest: md, Source: "upstream", CheckedAt: checked})
	if err != nil {
		t.Fatal(err)
	}
	seq := mustSeq(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, dir)
	if got := mustSeq(t, s); got != seq {
		t.Errorf("seq after reopen = %d, want %d", got, seq)
	}
	if got, err := s.Tag("docker.io", "library/alpine", "3.20"); err != nil || got != tag {
		t.Errorf("Tag after reopen = %+v, %v; want %+v", got, err, tag)
	}
	if ok, err := s.Linked("docker.io", "library/alpine", md); err != nil || !ok {
		t.Errorf("Linked after reopen = %v, %v; want true", ok, err)
	}
	if refs, err := s.Refs(md); err != nil || len(refs) != 1 || refs[0] != layer.Digest {
		t.Errorf("Refs after reopen = %v, %v; want [%s]", refs, err, layer.Digest)
	}
	if body, _, err := s.ReadManifest(md); err != nil || string(body) != string(manifest) {
		t.Errorf("ReadManifest after reopen = %q, %v; want %q", body, err, manifest)
	}
	if _, err := s.Stat(layer.Digest); err != nil {
		t.Errorf("Stat(layer) after reopen: %v", err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	newer := strconv.Itoa(schemaVersion + 1)
	err := s.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(schemaKey), []byte(newer)) })
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(dir)
	if err == nil {
		s2.Close()
		t.Fatalf("Open with schema %s succeeded, want an error", newer)
	}
	if msg := err.Error(); !strings.Contains(msg, "schema version "+newer) || !strings.Contains(msg, "supports") {
		t.Errorf("error = %q, want it to name schema version %s and what this build supports", msg, newer)
	}
	// Open released the database: a later Open does not hit badger's lock.
	if _, err := Open(dir); err == nil || strings.Contains(err.Error(), "lock") {
		t.Errorf("second Open error = %v, want the schema error again", err)
	}
}

func TestOpenTwiceIsRefused(t *testing.T) {
	dir := t.TempDir()
	openStore(t, dir)
	if s2, err := Open(dir); err == nil {
		s2.Close()
		t.Errorf("second Open of the same data dir succeeded, want an error")
	}
}

// recordHandler keeps the messages of the records it handles.
type recordHandler struct {
	mu   sync.Mutex
	msgs []string
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordHandler) WithGroup(string) slog.Handler            { return h }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, r.Level.String()+" "+r.Message)
	return nil
}

func TestBadgerLogsGoToSlog(t *testing.T) {
	h := &recordHandler{}
	s := openStore(t, t.TempDir(), WithLogger(slog.New(h)))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.msgs) == 0 {
		t.Fatalf("no badger log records reached the injected logger")
	}
	for _, m := range h.msgs {
		if strings.HasPrefix(m, "INFO") || strings.HasSuffix(m, "\n") {
			t.Errorf("record %q: want badger info at debug level, no trailing newline", m)
		}
	}
}
