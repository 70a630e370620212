package storage

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func TestPutManifestRefs(t *testing.T) {
	s := openStore(t, t.TempDir())
	cfg, l1, l2 := digestOf([]byte("config")), digestOf([]byte("l1")), digestOf([]byte("l2"))
	subject := digestOf([]byte("subject"))
	image := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
		"config":{"digest":"` + cfg + `","size":6},
		"layers":[{"digest":"` + l1 + `"},{"digest":"` + l2 + `"},{"digest":"` + l1 + `"}],
		"subject":{"digest":"` + subject + `"}}`)
	m1, m2 := digestOf(image), digestOf([]byte("other"))
	index := []byte(`{"schemaVersion":2,"manifests":[{"digest":"` + m1 + `"},{"digest":"` + m2 + `"},{"digest":"sha256:BAD"}]}`)
	tests := []struct {
		name string
		body []byte
		want []string
	}{
		{"image manifest", image, sorted(cfg, l1, l2, subject)},
		{"index", index, sorted(m1, m2)},
		{"not json", []byte("not json {"), nil},
		{"json array", []byte(`[1,2]`), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := digestOf(tt.body)
			before := mustSeq(t, s)
			info, err := s.PutManifest(d, "application/json", tt.body, testFill)
			if err != nil {
				t.Fatalf("PutManifest: %v", err)
			}
			if info.Kind != KindManifest || info.Size != int64(len(tt.body)) {
				t.Errorf("info = %+v, want kind manifest, size %d", info, len(tt.body))
			}
			if got := mustSeq(t, s); got != before+1 {
				t.Errorf("seq = %d, want %d", got, before+1)
			}
			refs, err := s.Refs(d)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(refs, tt.want) {
				t.Errorf("Refs = %v, want %v", refs, tt.want)
			}
			body, _, err := s.ReadManifest(d)
			if err != nil || string(body) != string(tt.body) {
				t.Errorf("ReadManifest = %q, %v; want the stored bytes", body, err)
			}
		})
	}
}

func sorted(s ...string) []string { slices.Sort(s); return s }

func TestPutManifestMismatch(t *testing.T) {
	s := openStore(t, t.TempDir())
	d := digestOf([]byte("one"))
	if _, err := s.PutManifest(d, "", []byte("two"), testFill); !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("PutManifest: got %v, want ErrDigestMismatch", err)
	}
	if got := mustSeq(t, s); got != 0 {
		t.Errorf("seq = %d after a failed PutManifest, want 0", got)
	}
	checkNothingCommitted(t, s, d)
	if _, _, err := s.ReadManifest(d); !errors.Is(err, ErrNotFound) {
		t.Errorf("ReadManifest: got %v, want ErrNotFound", err)
	}
}

func TestTagsSeq(t *testing.T) {
	s := openStore(t, t.TempDir())
	d := digestOf([]byte("m"))
	rec := TagRecord{Digest: d, MediaType: "application/vnd.oci.image.index.v1+json", Source: "upstream"}
	first, err := s.PutTag("docker.io", "library/alpine", "latest", rec)
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.PutTag("docker.io", "library/alpine", "3.20", rec)
	if err != nil {
		t.Fatal(err)
	}
	if first.Seq != 1 || second.Seq != 2 {
		t.Errorf("seqs = %d, %d; want 1, 2", first.Seq, second.Seq)
	}
	at := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := s.MarkChecked("docker.io", "library/alpine", "latest", at); err != nil {
		t.Fatal(err)
	}
	if got := mustSeq(t, s); got != 2 {
		t.Errorf("seq after MarkChecked = %d, want 2", got)
	}
	got, err := s.Tag("docker.io", "library/alpine", "latest")
	want := first
	want.CheckedAt = at
	if err != nil || got != want {
		t.Errorf("Tag = %+v, %v; want %+v", got, err, want)
	}
	if err := s.MarkChecked("docker.io", "library/alpine", "nope", at); !errors.Is(err, ErrNotFound) {
		t.Errorf("MarkChecked(absent) = %v, want ErrNotFound", err)
	}
	if _, err := s.Tag("docker.io", "library/alpine", "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Tag(absent) = %v, want ErrNotFound", err)
	}
}

func TestTagsPrefixExact(t *testing.T) {
	s := openStore(t, t.TempDir())
	rec := TagRecord{Digest: digestOf([]byte("m")), Source: "push"}
	for _, k := range [][3]string{
		{"reg.local", "a", "v2"}, {"reg.local", "a", "v1"}, {"reg.local", "a", "latest"},
		{"reg.local", "a/b", "x"}, {"reg.local", "ab", "y"}, {"reg.local2", "a", "z"},
	} {
		if _, err := s.PutTag(k[0], k[1], k[2], rec); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		ns, repo string
		want     []string
	}{
		{"reg.local", "a", []string{"latest", "v1", "v2"}},
		{"reg.local", "a/b", []string{"x"}},
		{"reg.local", "ab", []string{"y"}},
		{"reg.local2", "a", []string{"z"}},
		{"reg.local", "none", nil},
	}
	for _, tt := range tests {
		got, err := s.Tags(tt.ns, tt.repo)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("Tags(%q, %q) = %v, %v; want %v", tt.ns, tt.repo, got, err, tt.want)
		}
	}
}

func TestInvalidNames(t *testing.T) {
	s := openStore(t, t.TempDir())
	d := digestOf([]byte("m"))
	for _, n := range [][3]string{{"", "r", "t"}, {"ns", "", "t"}, {"ns", "r", ""}, {"ns", "r\x00x", "t"}} {
		if _, err := s.PutTag(n[0], n[1], n[2], TagRecord{Digest: d}); !errors.Is(err, ErrInvalidName) {
			t.Errorf("PutTag(%q) = %v, want ErrInvalidName", n, err)
		}
	}
	if err := s.Link("ns", "r\x00", d, LinkServed); !errors.Is(err, ErrInvalidName) {
		t.Errorf("Link with NUL = %v, want ErrInvalidName", err)
	}
}

func TestLinks(t *testing.T) {
	s := openStore(t, t.TempDir())
	d := digestOf([]byte("blob"))
	if ok, err := s.Linked("docker.io", "a", d); err != nil || ok {
		t.Errorf("Linked before Link = %v, %v; want false", ok, err)
	}
	for _, how := range []LinkSource{LinkPushed, LinkServed} {
		if err := s.Link("docker.io", "a", d, how); err != nil {
			t.Fatalf("Link(%s): %v", how, err)
		}
	}
	if ok, err := s.Linked("docker.io", "a", d); err != nil || !ok {
		t.Errorf("Linked = %v, %v; want true", ok, err)
	}
	if ok, _ := s.Linked("docker.io", "a/b", d); ok {
		t.Errorf("Linked(a/b) = true, want false")
	}
	var rec linkRecord
	if err := s.db.View(func(txn *badger.Txn) error { return getJSON(txn, linkKey("docker.io", "a", d), &rec) }); err != nil {
		t.Fatal(err)
	}
	if rec.How != LinkPushed {
		t.Errorf("link how = %q after pushed then served, want %q", rec.How, LinkPushed)
	}
	if err := s.Link("docker.io", "a", d, "stolen"); err == nil {
		t.Errorf("Link with unknown source succeeded, want an error")
	}
}

func TestConcurrentTagWritesSeq(t *testing.T) {
	s := openStore(t, t.TempDir())
	rec := TagRecord{Digest: digestOf([]byte("m")), Source: "push"}
	const n = 20
	seqs := make([]uint64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			got, err := s.PutTag("reg.local", "a", "t", rec)
			if err != nil {
				t.Errorf("PutTag: %v", err)
			}
			seqs[i] = got.Seq
		})
	}
	wg.Wait()
	slices.Sort(seqs)
	for i, got := range seqs {
		if want := uint64(i + 1); got != want {
			t.Fatalf("sorted seqs = %v, want 1..%d each once", seqs, n)
		}
	}
}
