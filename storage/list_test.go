package storage

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func TestEachTagAndPinReasons(t *testing.T) {
	s := openStore(t, t.TempDir())
	d := digestOf([]byte("x"))
	for _, r := range [][3]string{{"docker.io", "library/a", "1"}, {"docker.io", "library/a/b", "2"}, {"ghcr.io", "o/app", "v1"}} {
		if _, err := s.PutTag(r[0], r[1], r[2], TagRecord{Digest: d, Source: "upstream"}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	if err := s.EachTag(func(ns, repo, tag string, rec TagRecord) error {
		got = append(got, ns+"/"+repo+":"+tag+"="+rec.Digest[:10])
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{"docker.io/library/a:1=" + d[:10], "docker.io/library/a/b:2=" + d[:10], "ghcr.io/o/app:v1=" + d[:10]}
	if !slices.Equal(got, want) {
		t.Errorf("EachTag: got %v, want %v", got, want)
	}
	stop := errors.New("stop")
	if err := s.EachTag(func(string, string, string, TagRecord) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("EachTag did not return fn's error: %v", err)
	}
	for _, r := range []string{"cli", "config:x"} {
		if err := s.Pin(d, r); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.PinReasons(d); err != nil || !slices.Equal(got, []string{"cli", "config:x"}) {
		t.Errorf("PinReasons: %v, %v", got, err)
	}
}

func TestStillNamed(t *testing.T) {
	s := openStore(t, t.TempDir())
	layer := commitBlob(t, s, []byte("layer"), KindLayer)
	orphan := commitBlob(t, s, []byte("orphan"), KindLayer)
	cfg := commitBlob(t, s, []byte("{}"), KindConfig)
	body := []byte(`{"schemaVersion":2,"config":{"digest":"` + cfg.Digest + `"},"layers":[{"digest":"` + layer.Digest + `"}]}`)
	if _, err := s.PutManifest(digestOf(body), "application/vnd.oci.image.manifest.v1+json", body, testFill); err != nil {
		t.Fatal(err)
	}
	got, err := s.StillNamed([]string{layer.Digest, orphan.Digest})
	if err != nil || !got[layer.Digest] || got[orphan.Digest] {
		t.Errorf("StillNamed: %v, %v; want only the manifest's layer", got, err)
	}
	if err := s.Remove(digestOf(body)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.StillNamed([]string{layer.Digest}); got[layer.Digest] {
		t.Errorf("StillNamed after the manifest went: %v, want nothing", got)
	}
}

// Tag records are served from memory, and every write is seen at once.
func TestTagCacheSeesWrites(t *testing.T) {
	s := openStore(t, t.TempDir())
	a, b := digestOf([]byte("a")), digestOf([]byte("b"))
	if _, err := s.PutTag("docker.io", "r", "t", TagRecord{Digest: a, Source: "upstream"}); err != nil {
		t.Fatal(err)
	}
	if rec, _ := s.Tag("docker.io", "r", "t"); rec.Digest != a {
		t.Fatalf("got %s, want %s", rec.Digest, a)
	}
	if _, err := s.PutTag("docker.io", "r", "t", TagRecord{Digest: b, Source: "upstream"}); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	if err := s.MarkChecked("docker.io", "r", "t", at); err != nil {
		t.Fatal(err)
	}
	if rec, _ := s.Tag("docker.io", "r", "t"); rec.Digest != b || !rec.CheckedAt.Equal(at) {
		t.Errorf("after the writes: %+v, want digest %s checked at %v", rec, b, at)
	}
}
