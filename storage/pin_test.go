package storage

import (
	"errors"
	"slices"
	"testing"
)

func TestPinReasons(t *testing.T) {
	s := openStore(t, t.TempDir())
	d := commitBlob(t, s, []byte("pinned"), KindLayer).Digest
	steps := []struct {
		op, reason string
		want       bool
	}{
		{"pin", "cli", true},
		{"pin", "config:docker.io/library/alpine:3.19", true},
		{"pin", "cli", true},
		{"unpin", "cli", true},
		{"unpin", "absent", true},
		{"unpin", "config:docker.io/library/alpine:3.19", false},
		{"unpin", "cli", false},
	}
	for _, st := range steps {
		op := s.Pin
		if st.op == "unpin" {
			op = s.Unpin
		}
		if err := op(d, st.reason); err != nil {
			t.Fatalf("%s(%q): %v", st.op, st.reason, err)
		}
		if got, err := s.Pinned(d); err != nil || got != st.want {
			t.Errorf("after %s(%q): Pinned = %v, %v; want %v", st.op, st.reason, got, err, st.want)
		}
	}
	if err := s.Pin(d, ""); !errors.Is(err, ErrInvalidName) {
		t.Errorf("Pin with empty reason = %v, want ErrInvalidName", err)
	}
	if err := s.Pin("sha256:x", "cli"); !errors.Is(err, ErrInvalidDigest) {
		t.Errorf("Pin with bad digest = %v, want ErrInvalidDigest", err)
	}
	// A pin of one digest is not a pin of another that shares a prefix.
	if err := s.Pin(d, "cli"); err != nil {
		t.Fatal(err)
	}
	other := fakeDigest(1)
	if got, _ := s.Pinned(other); got {
		t.Errorf("Pinned(unpinned digest) = true, want false")
	}
}

func TestClosure(t *testing.T) {
	s := openStore(t, t.TempDir())
	put := func(body string) string {
		t.Helper()
		d := digestOf([]byte(body))
		if _, err := s.PutManifest(d, "application/json", []byte(body), testFill); err != nil {
			t.Fatal(err)
		}
		return d
	}
	cfg1, cfg2 := digestOf([]byte("cfg1")), digestOf([]byte("cfg2"))
	l1, l2 := digestOf([]byte("l1")), digestOf([]byte("l2"))
	m1 := put(`{"config":{"digest":"` + cfg1 + `"},"layers":[{"digest":"` + l1 + `"},{"digest":"` + l2 + `"}]}`)
	m2 := put(`{"config":{"digest":"` + cfg2 + `"},"layers":[{"digest":"` + l1 + `"}]}`)
	index := put(`{"manifests":[{"digest":"` + m1 + `"},{"digest":"` + m2 + `"}]}`)
	tests := []struct {
		name, root string
		want       []string
	}{
		{"index", index, []string{index, m1, m2, cfg1, cfg2, l1, l2}},
		{"manifest", m2, []string{m2, cfg2, l1}},
		{"layer", l1, []string{l1}},
	}
	for _, tt := range tests {
		got, err := s.Closure(tt.root)
		if err != nil {
			t.Fatalf("Closure(%s): %v", tt.name, err)
		}
		if len(got) == 0 || got[0] != tt.root {
			t.Errorf("Closure(%s) = %v, want the root first", tt.name, got)
		}
		if !slices.Equal(sorted(got...), sorted(tt.want...)) {
			t.Errorf("Closure(%s) = %v, want %v in any order", tt.name, got, tt.want)
		}
	}
}
