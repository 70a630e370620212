package storage

import (
	"fmt"
	"testing"
)

func TestLinkHolders(t *testing.T) {
	s := openStore(t, t.TempDir())
	d := digestOf([]byte("blob"))
	other := digestOf([]byte("other"))
	if got, err := s.LinkHolders(d); err != nil || len(got) != 0 {
		t.Errorf("LinkHolders before Link = %v, %v; want none", got, err)
	}
	links := []struct {
		ns, repo, digest string
		how              LinkSource
	}{
		{"registry.internal", "team/app", d, LinkPushed},
		{"docker.io", "library/alpine", d, LinkServed},
		{"docker.io", "library/debian", other, LinkPushed},
	}
	for _, l := range links {
		if err := s.Link(l.ns, l.repo, l.digest, l.how); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.LinkHolders(d)
	want := []LinkHolder{{"docker.io", "library/alpine", LinkServed}, {"registry.internal", "team/app", LinkPushed}}
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("LinkHolders = %v, %v; want %v", got, err, want)
	}
	if _, err := s.LinkHolders("sha256:nope"); err == nil {
		t.Error("LinkHolders of an invalid digest: no error")
	}
}

func TestLinkHoldersBounded(t *testing.T) {
	s := openStore(t, t.TempDir())
	d := digestOf([]byte("popular"))
	for i := range MaxLinkHolders + 10 {
		if err := s.Link("registry.internal", fmt.Sprintf("repo%04d", i), d, LinkPushed); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.LinkHolders(d)
	if err != nil || len(got) != MaxLinkHolders {
		t.Fatalf("LinkHolders of a blob in %d repositories: %d, %v; want %d", MaxLinkHolders+10, len(got), err, MaxLinkHolders)
	}
	if got[0].Repo != "repo0000" {
		t.Errorf("first holder %q, want repo0000 (key order)", got[0].Repo)
	}
}
