package storage

import (
	"bytes"
	"slices"
	"testing"
	"time"
)

func TestPrune(t *testing.T) {
	// Five 100-byte blobs a..e committed a minute apart (a oldest, at
	// start+1m); olderThan is an offset from start.
	tests := []struct {
		name      string
		touch     []string // touched at start+10m, after the commits
		pin, skip []string
		olderThan time.Duration
		want      []string // removed, in order
	}{
		{"older ones only", nil, nil, nil, 3*time.Minute + time.Second, []string{"a", "b", "c"}},
		{"cut is exclusive", nil, nil, nil, 3 * time.Minute, []string{"a", "b"}},
		{"touch makes recent", []string{"a"}, nil, nil, 3*time.Minute + time.Second, []string{"b", "c"}},
		{"pinned and skipped survive", nil, []string{"b"}, []string{"c"}, time.Hour, []string{"a", "d", "e"}},
		{"nothing old", nil, nil, nil, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, t.TempDir())
			clk := newClock(s)
			start := clk.Now()
			digests, byDigest := map[string]string{}, map[string]string{}
			for _, name := range []string{"a", "b", "c", "d", "e"} {
				clk.Advance(time.Minute)
				d := commitBlob(t, s, bytes.Repeat([]byte(name), 100), KindLayer).Digest
				digests[name], byDigest[d] = d, name
			}
			clk.Advance(5 * time.Minute)
			for _, name := range tt.touch {
				s.Touch(digests[name]) // pending: Prune must flush it first
			}
			for _, name := range tt.pin {
				if err := s.Pin(digests[name], "cli"); err != nil {
					t.Fatal(err)
				}
			}
			skip := func(d string) bool { return slices.Contains(tt.skip, byDigest[d]) }
			evicted, err := s.Prune(start.Add(tt.olderThan), skip)
			if err != nil {
				t.Fatalf("Prune: %v", err)
			}
			var got []string
			for _, ev := range evicted {
				got = append(got, byDigest[ev.Digest])
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("removed %v, want %v", got, tt.want)
			}
			if used, n := s.Usage(); used != int64(100*(5-len(tt.want))) || n != 5-len(tt.want) {
				t.Errorf("Usage after prune: %d bytes, %d blobs, want %d, %d", used, n, 100*(5-len(tt.want)), 5-len(tt.want))
			}
			for _, name := range tt.want {
				if _, _, err := s.OpenBlob(digests[name]); err == nil {
					t.Errorf("blob %s still readable after prune", name)
				}
			}
		})
	}
}

func TestPruneDropsTagsOfRemovedManifest(t *testing.T) {
	s := openStore(t, t.TempDir())
	clk := newClock(s)
	body := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}`)
	d := digestOf(body)
	if _, err := s.PutManifest(d, "application/vnd.oci.image.manifest.v1+json", body, testFill); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutTag("docker.io", "library/alpine", "3", TagRecord{Digest: d, Source: "upstream"}); err != nil {
		t.Fatal(err)
	}
	evicted, err := s.Prune(clk.Advance(time.Hour), nil)
	if err != nil || len(evicted) != 1 || evicted[0].Tags != 1 {
		t.Fatalf("Prune: got %+v, %v, want the manifest with 1 tag", evicted, err)
	}
	if _, err := s.Tag("docker.io", "library/alpine", "3"); err == nil {
		t.Errorf("tag still present after its manifest was pruned")
	}
}
