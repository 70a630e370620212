package storage

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestEvict(t *testing.T) {
	// Five 100-byte blobs a..e committed a minute apart (a oldest).
	tests := []struct {
		name      string
		touch     []string // touched in this order, a minute apart, after the commits
		pin, skip []string
		sameTime  bool // commit everything at one instant: digest order decides
		target    int64
		want      []string // evicted, in order
	}{
		{"oldest first", nil, nil, nil, false, 250, []string{"a", "b", "c"}},
		{"touch makes recent", []string{"a", "b"}, nil, nil, false, 250, []string{"c", "d", "e"}},
		{"pinned and skipped survive", []string{"a"}, []string{"b"}, []string{"c"}, false, 0, []string{"d", "e", "a"}},
		{"target already met", nil, nil, nil, false, 500, nil},
		{"exact target", nil, nil, nil, false, 300, []string{"a", "b"}},
		{"ties broken by digest", nil, nil, nil, true, 0, nil}, // want filled below
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, t.TempDir())
			clk := newClock(s)
			digests := map[string]string{}
			byDigest := map[string]string{}
			for _, name := range []string{"a", "b", "c", "d", "e"} {
				if !tt.sameTime {
					clk.Advance(time.Minute)
				}
				d := commitBlob(t, s, bytes.Repeat([]byte(name), 100), KindLayer).Digest
				digests[name], byDigest[d] = d, name
			}
			for _, name := range tt.touch {
				clk.Advance(time.Minute)
				s.Touch(digests[name])
			}
			for _, name := range tt.pin {
				if err := s.Pin(digests[name], "cli"); err != nil {
					t.Fatal(err)
				}
			}
			want := tt.want
			if tt.sameTime {
				want = slices.SortedFunc(maps.Keys(digests), func(x, y string) int {
					return strings.Compare(digests[x], digests[y])
				})
			}
			skip := func(d string) bool { return slices.Contains(tt.skip, byDigest[d]) }
			ev, err := s.Evict(tt.target, skip)
			if err != nil {
				t.Fatalf("Evict: %v", err)
			}
			var got []string
			for _, e := range ev {
				got = append(got, byDigest[e.Digest])
			}
			if !slices.Equal(got, want) {
				t.Errorf("evicted %v, want %v", got, want)
			}
			checkEvicted(t, s, digests, want)
			wantBytes := int64(500 - 100*len(want))
			if b, n := s.Usage(); b != wantBytes || n != 5-len(want) {
				t.Errorf("Usage() = %d bytes, %d blobs; want %d, %d", b, n, wantBytes, 5-len(want))
			}
		})
	}
}

// checkEvicted asserts that exactly the named blobs are gone, metadata and
// file, and the others are intact.
func checkEvicted(t *testing.T, s *Store, digests map[string]string, evicted []string) {
	t.Helper()
	for name, d := range digests {
		gone := slices.Contains(evicted, name)
		_, err := s.Stat(d)
		if gotGone := errors.Is(err, ErrNotFound); gotGone != gone {
			t.Errorf("%s: Stat error = %v, want gone %v", name, err, gone)
		}
		p, _ := parseDigest(d)
		_, err = os.Stat(p.path(s.DataDir()))
		if gotGone := os.IsNotExist(err); gotGone != gone {
			t.Errorf("%s: file stat error = %v, want gone %v", name, err, gone)
		}
	}
}

func TestEvictManifestDropsTagsAndRefs(t *testing.T) {
	s := openStore(t, t.TempDir())
	cfg := commitBlob(t, s, []byte("config"), KindConfig).Digest
	layer := commitBlob(t, s, []byte("layer"), KindLayer).Digest
	image := []byte(`{"schemaVersion":2,"config":{"digest":"` + cfg + `"},"layers":[{"digest":"` + layer + `"}]}`)
	md := digestOf(image)
	if _, err := s.PutManifest(md, "application/vnd.oci.image.manifest.v1+json", image, testFill); err != nil {
		t.Fatal(err)
	}
	other := []byte(`{"schemaVersion":2,"layers":[{"digest":"` + layer + `"}]}`)
	od := digestOf(other)
	if _, err := s.PutManifest(od, "application/vnd.oci.image.manifest.v1+json", other, testFill); err != nil {
		t.Fatal(err)
	}
	for _, tag := range []struct{ repo, tag, digest string }{
		{"library/alpine", "3.20", md}, {"library/alpine", "latest", md},
		{"library/alpine", "edge", od}, {"other/app", "v1", md},
	} {
		if _, err := s.PutTag("docker.io", tag.repo, tag.tag, TagRecord{Digest: tag.digest, Source: "upstream"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{od, layer} {
		if err := s.Pin(d, "cli"); err != nil {
			t.Fatal(err)
		}
	}
	ev, err := s.Evict(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	tagsDropped := map[string]int{}
	for _, e := range ev {
		tagsDropped[e.Digest] = e.Tags
	}
	if want := map[string]int{cfg: 0, md: 3}; !mapsEqual(tagsDropped, want) {
		t.Errorf("evicted (digest -> tags dropped) = %v, want %v", tagsDropped, want)
	}
	tests := []struct{ repo, want string }{{"library/alpine", "edge"}, {"other/app", ""}}
	for _, tt := range tests {
		got, err := s.Tags("docker.io", tt.repo)
		if err != nil || (tt.want == "" && len(got) != 0) || (tt.want != "" && !slices.Equal(got, []string{tt.want})) {
			t.Errorf("Tags(%s) = %v, %v; want [%s]", tt.repo, got, err, tt.want)
		}
	}
	if refs, err := s.Refs(md); err != nil || len(refs) != 0 {
		t.Errorf("Refs(evicted manifest) = %v, %v; want none", refs, err)
	}
	if refs, err := s.Refs(od); err != nil || !slices.Equal(refs, []string{layer}) {
		t.Errorf("Refs(kept manifest) = %v, %v; want [%s]", refs, err, layer)
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestRemove(t *testing.T) {
	s := openStore(t, t.TempDir())
	d := commitBlob(t, s, []byte("pinned but removed"), KindLayer).Digest
	if err := s.Pin(d, "push"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(d); err != nil {
		t.Fatalf("Remove(pinned) = %v, want nil", err)
	}
	checkEvicted(t, s, map[string]string{"blob": d}, []string{"blob"})
	if err := s.Remove(d); !errors.Is(err, ErrNotFound) {
		t.Errorf("Remove again = %v, want ErrNotFound", err)
	}
	if err := s.Remove("sha256:nope"); !errors.Is(err, ErrInvalidDigest) {
		t.Errorf("Remove(bad digest) = %v, want ErrInvalidDigest", err)
	}
}

// TestEvictRacesCommits commits, reads, touches and evicts the same digests
// at once; afterwards every record has its file and Usage matches the
// records.
func TestEvictRacesCommits(t *testing.T) {
	s := openStore(t, t.TempDir())
	var bodies [][]byte
	for i := range 8 {
		bodies = append(bodies, bytes.Repeat([]byte{byte('a' + i)}, 1000))
	}
	var wg sync.WaitGroup
	for _, b := range bodies {
		wg.Go(func() {
			for range 20 {
				if err := tryCommit(s, b); err != nil {
					t.Errorf("commit: %v", err)
					return
				}
				if f, _, err := s.OpenBlob(digestOf(b)); err == nil {
					f.Close()
				}
				s.Touch(digestOf(b))
			}
		})
	}
	wg.Go(func() {
		for range 30 {
			if _, err := s.Evict(2000, nil); err != nil {
				t.Errorf("Evict: %v", err)
			}
		}
	})
	wg.Wait()
	var bytesSum int64
	var n int
	err := s.forEachBlob(func(info BlobInfo) error {
		bytesSum, n = bytesSum+info.Size, n+1
		p, _ := parseDigest(info.Digest)
		if _, err := os.Stat(p.path(s.dir)); err != nil {
			t.Errorf("%s has a record but no file", info.Digest)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if b, c := s.Usage(); b != bytesSum || c != n {
		t.Errorf("Usage() = %d, %d; records hold %d bytes in %d blobs", b, c, bytesSum, n)
	}
}

// tryCommit commits b as a layer; for goroutines that must not t.Fatal.
func tryCommit(s *Store, b []byte) error {
	w, err := s.NewWriter(digestOf(b), int64(len(b)))
	if err != nil {
		return err
	}
	defer w.Abort()
	if _, err := w.Write(b); err != nil {
		return err
	}
	_, err = w.Commit(KindLayer, "")
	return err
}

// TestEvictPinnedAfterSelection pins a blob after Evict chose it (from the
// skip callback, which runs between selection and removal): the check in
// the removal transaction keeps it.
func TestEvictPinnedAfterSelection(t *testing.T) {
	s := openStore(t, t.TempDir())
	clk := newClock(s)
	late := commitBlob(t, s, []byte("pinned late"), KindLayer).Digest
	clk.Advance(time.Minute)
	other := commitBlob(t, s, []byte("other"), KindLayer).Digest
	calls := 0
	skip := func(d string) bool {
		if d == late {
			if calls++; calls == 2 { // 1: selection, 2: just before removal
				if err := s.Pin(d, "late"); err != nil {
					t.Errorf("Pin: %v", err)
				}
			}
		}
		return false
	}
	ev, err := s.Evict(0, skip)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev) != 1 || ev[0].Digest != other {
		t.Errorf("evicted %v, want only %s", ev, other)
	}
	checkEvicted(t, s, map[string]string{"late": late, "other": other}, []string{"other"})
}
