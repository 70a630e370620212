package storage

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// changesAfter reads every entry after since, failing the test on error.
func changesAfter(t *testing.T, s *Store, since uint64) []Change {
	t.Helper()
	cs, err := s.Changes(since, 1<<20)
	if err != nil {
		t.Fatalf("Changes(%d): %v", since, err)
	}
	return cs
}

func seqsOf(cs []Change) []uint64 {
	out := make([]uint64, len(cs))
	for i, c := range cs {
		out[i] = c.Seq
	}
	return out
}

// Each kind of write makes exactly one entry, with its names, kind, cause
// and origin site; the writes that change nothing a consumer follows make
// none and leave seq alone.
func TestEachWriteLogsOneEntry(t *testing.T) {
	s := openStore(t, t.TempDir(), WithSite("eu-west"))
	clk := newClock(s)
	manifest := []byte(`{"schemaVersion":2,"layers":[]}`)
	md := digestOf(manifest)
	blob := func(name string) string { return commitBlob(t, s, []byte(name), KindLayer).Digest }
	only := func(keep string) func(string) bool { return func(d string) bool { return d != keep } }
	b1, b2, b3, b4, b5 := digestOf([]byte("b1")), digestOf([]byte("b2")), digestOf([]byte("b3")), digestOf([]byte("b4")), digestOf([]byte("b5"))
	tests := []struct {
		name  string
		setup func(t *testing.T)
		write func() error
		want  Change // zero: no entry
	}{
		{"tag from upstream", nil, func() error {
			_, err := s.PutTag("docker.io", "library/alpine", "3.20", TagRecord{Digest: md, Source: "upstream"})
			return err
		}, Change{Kind: ChangeTagPut, Cause: CauseFill, Site: "eu-west", Namespace: "docker.io", Repo: "library/alpine", Tag: "3.20", Digest: md}},
		{"tag pushed", nil, func() error {
			_, err := s.PutTag("reg.local", "team/app", "v1", TagRecord{Digest: md, Source: "push"})
			return err
		}, Change{Kind: ChangeTagPut, Cause: CausePush, Site: "eu-west", Namespace: "reg.local", Repo: "team/app", Tag: "v1", Digest: md}},
		{"tag replicated", nil, func() error {
			_, err := s.PutTag("reg.local", "team/app", "v2", TagRecord{Digest: md, Source: "replica:us-east"})
			return err
		}, Change{Kind: ChangeTagPut, Cause: CauseReplica, Site: "us-east", Namespace: "reg.local", Repo: "team/app", Tag: "v2", Digest: md}},
		{"tag imported", nil, func() error {
			_, err := s.PutTag("reg.local", "team/app", "v3", TagRecord{Digest: md, Source: "import:bundle-7"})
			return err
		}, Change{Kind: ChangeTagPut, Cause: CauseImport, Site: "eu-west", Namespace: "reg.local", Repo: "team/app", Tag: "v3", Digest: md}},
		{"manifest filled", nil, func() error {
			_, err := s.PutManifest(md, "application/vnd.oci.image.manifest.v1+json", manifest,
				ManifestWrite{Namespace: "docker.io", Repo: "library/alpine", Cause: CauseFill})
			return err
		}, Change{Kind: ChangeManifestPut, Cause: CauseFill, Site: "eu-west", Namespace: "docker.io", Repo: "library/alpine", Digest: md}},
		{"manifest replicated", nil, func() error {
			_, err := s.PutManifest(md, "application/vnd.oci.image.manifest.v1+json", manifest,
				ManifestWrite{Namespace: "reg.local", Repo: "team/app", Cause: CauseReplica, Site: "us-east"})
			return err
		}, Change{Kind: ChangeManifestPut, Cause: CauseReplica, Site: "us-east", Namespace: "reg.local", Repo: "team/app", Digest: md}},
		{"tag deleted", nil, func() error { return s.DeleteTag("reg.local", "team/app", "v1") },
			Change{Kind: ChangeTagDelete, Cause: CauseDelete, Site: "eu-west", Namespace: "reg.local", Repo: "team/app", Tag: "v1", Digest: md}},
		{"unlinked", func(t *testing.T) {
			if err := s.Link("reg.local", "team/app", md, LinkPushed); err != nil {
				t.Fatal(err)
			}
		}, func() error { _, err := s.Unlink("reg.local", "team/app", md); return err },
			Change{Kind: ChangeUnlink, Cause: CauseDelete, Site: "eu-west", Namespace: "reg.local", Repo: "team/app", Digest: md}},
		{"removed after a delete", func(*testing.T) { blob("b1") }, func() error {
			if ok, err := s.RemoveUnreferenced(b1); !ok {
				return fmt.Errorf("not removed: %v", err)
			}
			return nil
		}, Change{Kind: ChangeEvict, Cause: CauseDelete, Site: "eu-west", Digest: b1}},
		{"removed by an admin", func(*testing.T) { blob("b2") }, func() error { return s.Remove(b2) },
			Change{Kind: ChangeEvict, Cause: CauseAdmin, Site: "eu-west", Digest: b2}},
		{"pruned", func(*testing.T) { blob("b3") }, func() error {
			_, err := s.Prune(clk.Now().Add(time.Hour), only(b3))
			return err
		}, Change{Kind: ChangeEvict, Cause: CauseAdmin, Site: "eu-west", Digest: b3}},
		{"evicted", func(*testing.T) { blob("b4") }, func() error {
			_, err := s.Evict(0, only(b4))
			return err
		}, Change{Kind: ChangeEvict, Cause: CauseEvict, Site: "eu-west", Digest: b4}},
		{"quarantined", func(t *testing.T) { blob("b5"); corrupt(t, s.DataDir(), b5) }, func() error {
			_, err := s.Verify(t.Context())
			return err
		}, Change{Kind: ChangeEvict, Cause: CauseAdmin, Site: "eu-west", Digest: b5}},
		{"tag revalidated", nil, func() error { return s.MarkChecked("docker.io", "library/alpine", "3.20", clk.Now()) }, Change{}},
		{"blob committed, linked and pinned", nil, func() error {
			d := blob("kept")
			return errors.Join(s.Link("docker.io", "library/alpine", d, LinkServed), s.Pin(d, "rule"))
		}, Change{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup(t)
			}
			before := mustSeq(t, s)
			at := clk.Advance(time.Second)
			if err := tt.write(); err != nil {
				t.Fatalf("write: %v", err)
			}
			got := changesAfter(t, s, before)
			var want []Change
			if tt.want != (Change{}) {
				w := tt.want
				w.Seq, w.Time = before+1, at
				want = []Change{w}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("entries after %d:\n got %+v\nwant %+v", before, got, want)
			}
			if seq := mustSeq(t, s); seq != before+uint64(len(want)) {
				t.Errorf("seq = %d, want %d", seq, before+uint64(len(want)))
			}
		})
	}
}

// Evicting blobs with thousands of links (more than one transaction
// deletes, so batches split and one removal finishes in further
// transactions) writes one entry per blob, however many links go.
func TestEvictionIsOneEntryPerBlob(t *testing.T) {
	s := openStore(t, t.TempDir())
	links := map[string]int{}
	for i, n := range []int{0, 3, 2000, 2000, 6000} {
		d := commitBlob(t, s, fmt.Appendf(nil, "blob %d", i), KindLayer).Digest
		linkRepos(t, s, "docker.io", d, n)
		links[d] = n
	}
	before := mustSeq(t, s)
	evs, err := s.Evict(0, nil)
	if err != nil || len(evs) != len(links) {
		t.Fatalf("Evict: %d evicted, %v; want %d", len(evs), err, len(links))
	}
	got := changesAfter(t, s, before)
	if len(got) != len(links) {
		t.Fatalf("%d entries for %d evicted blobs, want one each: %v", len(got), len(links), got)
	}
	for i, c := range got {
		if c.Seq != before+uint64(i)+1 || c.Kind != ChangeEvict || c.Cause != CauseEvict || c.Namespace != "" {
			t.Errorf("entry %d = %+v, want seq %d, an eviction", i, c, before+uint64(i)+1)
		}
		if _, ok := links[c.Digest]; !ok {
			t.Errorf("entry %d names %s, not an evicted blob (or names it twice)", i, c.Digest)
		}
		delete(links, c.Digest)
	}
	for d, n := range links {
		if l, ix, marker := linkKeysOf(t, s, d); l+ix != 0 || marker {
			t.Errorf("%s (%d links): %d link keys, %d index keys left, marker %v", d, n, l, ix, marker)
		}
	}
}

// A consumer that records the last entry it handled, stops and starts
// again (after a clean stop or a crash) reads exactly the entries after it.
func TestConsumerResumesAtTheNextEntry(t *testing.T) {
	for _, stop := range []string{"clean", "crash"} {
		t.Run(stop, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			d := digestOf([]byte("m"))
			putTag := func(s *Store, tag string) {
				if _, err := s.PutTag("reg.local", "app", tag, TagRecord{Digest: d, Source: "push"}); err != nil {
					t.Fatal(err)
				}
			}
			for _, tag := range []string{"a", "b", "c"} {
				putTag(s, tag)
			}
			cs, err := s.Changes(0, 2)
			if err != nil || fmt.Sprint(seqsOf(cs)) != "[1 2]" {
				t.Fatalf("Changes(0, 2) = %v, %v; want seqs 1, 2", seqsOf(cs), err)
			}
			last := cs[len(cs)-1].Seq // handled a and b; c is still to do
			if stop == "clean" {
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			} else {
				crash(t, s)
			}
			s = openStore(t, dir)
			putTag(s, "d")
			putTag(s, "e")
			var tags []string
			got := changesAfter(t, s, last)
			for _, c := range got {
				tags = append(tags, c.Tag)
			}
			if fmt.Sprint(seqsOf(got)) != "[3 4 5]" || fmt.Sprint(tags) != "[c d e]" {
				t.Errorf("after the restart, entries after %d = seqs %v, tags %v; want 3 4 5, c d e", last, seqsOf(got), tags)
			}
		})
	}
}

// Bad writes and bad reads are refused with errors that say why.
func TestChangeLogRefusals(t *testing.T) {
	s := openStore(t, t.TempDir())
	body := []byte("{}")
	d := digestOf(body)
	for _, w := range []ManifestWrite{
		{Namespace: "reg.local", Repo: "app"},
		{Namespace: "reg.local", Repo: "app", Cause: CauseEvict},
		{Namespace: "reg.local", Repo: "app", Cause: "pull"},
		{Namespace: "reg.local", Repo: "app", Cause: CauseReplica},
	} {
		if _, err := s.PutManifest(d, "", body, w); err == nil {
			t.Errorf("PutManifest(%+v) succeeded, want an error", w)
		}
	}
	if _, err := s.PutManifest(d, "", body, ManifestWrite{Repo: "app", Cause: CausePush}); !errors.Is(err, ErrInvalidName) {
		t.Errorf("PutManifest without a namespace: %v, want ErrInvalidName", err)
	}
	for _, source := range []string{"", "pull", "replica:", "import:", "upstream:x"} {
		if _, err := s.PutTag("reg.local", "app", "t", TagRecord{Digest: d, Source: source}); err == nil {
			t.Errorf("PutTag with source %q succeeded, want an error", source)
		}
	}
	if n := mustSeq(t, s); n != 0 {
		t.Errorf("seq = %d after refused writes, want 0", n)
	}
	if _, err := s.Changes(0, 0); err == nil {
		t.Error("Changes with limit 0 succeeded, want an error")
	}
	if _, err := Open(t.TempDir(), WithChangeRetention(0)); err == nil {
		t.Error("Open with a zero change retention succeeded, want an error")
	}
}

func TestChangeEncodingRoundTrip(t *testing.T) {
	for _, c := range []Change{
		{},
		{Time: time.Unix(0, 1).UTC(), Kind: ChangeTagPut, Cause: CauseReplica, Site: "us-east",
			Namespace: "reg.local", Repo: "a/b", Tag: "v1", Digest: digestOf([]byte("x"))},
		{Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Kind: ChangeEvict, Cause: CauseEvict, Site: "s", Digest: "sha512:" + fmt.Sprintf("%0128d", 7)},
	} {
		c.Seq = 42
		got, err := decodeChange(42, c.encode())
		if err != nil || got != c {
			t.Errorf("decode(encode(%+v)) = %+v, %v", c, got, err)
		}
	}
	good := Change{Kind: ChangeUnlink, Digest: "d"}.encode()
	for _, b := range [][]byte{nil, {changeV1}, append([]byte{2}, good[1:]...), good[:len(good)-1], append(good, 0)} {
		if _, err := decodeChange(1, b); !errors.Is(err, errBadChange) {
			t.Errorf("decode(%x) = %v, want errBadChange", b, err)
		}
	}
}

func FuzzDecodeChange(f *testing.F) {
	f.Add(Change{Kind: ChangeTagPut, Cause: CausePush, Site: "x", Namespace: "n", Repo: "r", Tag: "t", Digest: "d"}.encode())
	f.Add([]byte{changeV1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeChange(1, b)
		if err != nil {
			return
		}
		again, err := decodeChange(1, c.encode())
		if err != nil || again != c {
			t.Errorf("decode(encode(%+v)) = %+v, %v", c, again, err)
		}
	})
}
