package storage

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func TestDeleteTag(t *testing.T) {
	s := openStore(t, t.TempDir())
	d := commitBlob(t, s, []byte(`{"m":1}`), KindManifest).Digest
	if _, err := s.PutTag("ns.io", "a/b", "v1", TagRecord{Digest: d, Source: "push", CheckedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Tag("ns.io", "a/b", "v1"); err != nil { // in the tag cache now
		t.Fatal(err)
	}
	seq := mustSeq(t, s)
	if err := s.DeleteTag("ns.io", "a/b", "v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Tag("ns.io", "a/b", "v1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Tag after DeleteTag: %v, want ErrNotFound", err)
	}
	if got := mustSeq(t, s); got != seq+1 {
		t.Errorf("seq %d after DeleteTag, want %d", got, seq+1)
	}
	if err := s.DeleteTag("ns.io", "a/b", "v1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeleteTag again: %v, want ErrNotFound", err)
	}
	if _, err := s.Stat(d); err != nil {
		t.Errorf("the manifest went with its tag: %v", err)
	}
}

// Unlink drops one repository's link, tags and referrer entries, and says
// whether another repository still holds the digest as pushed; the blob
// is removed only once nothing links or pins it.
func TestUnlinkAndRemoveUnreferenced(t *testing.T) {
	s := openStore(t, t.TempDir())
	d := commitBlob(t, s, []byte(`{"m":2}`), KindManifest).Digest
	subject := digestOf([]byte("subject"))
	for _, repo := range []string{"a", "b"} {
		if err := s.Link("ns.io", repo, d, LinkPushed); err != nil {
			t.Fatal(err)
		}
		if _, err := s.PutTag("ns.io", repo, "v1", TagRecord{Digest: d, Source: "push"}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutReferrer("ns.io", repo, subject, d, []byte(`{"digest":"`+d+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Pin(d, PushPinReason); err != nil {
		t.Fatal(err)
	}
	un, err := s.Unlink("ns.io", "a", d)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(un.Tags, []string{"v1"}) || !slices.Equal(un.Subjects, []string{subject}) || !un.PushedElsewhere {
		t.Errorf("Unlink = %+v, want tag v1, subject %s, pushed elsewhere", un, subject)
	}
	if ok, _ := s.Linked("ns.io", "a", d); ok {
		t.Error("still linked to a")
	}
	if _, err := s.Tag("ns.io", "a", "v1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a's tag: %v, want ErrNotFound", err)
	}
	if refs, _ := s.Referrers("ns.io", "a", subject); len(refs) != 0 {
		t.Errorf("a's referrers: %s, want none", refs)
	}
	if refs, _ := s.Referrers("ns.io", "b", subject); len(refs) != 1 {
		t.Errorf("b's referrers: %s, want one", refs)
	}
	if _, err := s.Unlink("ns.io", "a", d); !errors.Is(err, ErrNotFound) {
		t.Errorf("Unlink again: %v, want ErrNotFound", err)
	}
	if removed, err := s.RemoveUnreferenced(d); removed || err != nil {
		t.Fatalf("RemoveUnreferenced while b links it = %v, %v; want kept", removed, err)
	}
	un, err = s.Unlink("ns.io", "b", d)
	if err != nil || un.PushedElsewhere {
		t.Fatalf("Unlink b = %+v, %v", un, err)
	}
	if removed, err := s.RemoveUnreferenced(d); removed || err != nil {
		t.Fatalf("RemoveUnreferenced while pinned = %v, %v; want kept", removed, err)
	}
	if err := s.Unpin(d, PushPinReason); err != nil {
		t.Fatal(err)
	}
	if removed, err := s.RemoveUnreferenced(d); !removed || err != nil {
		t.Fatalf("RemoveUnreferenced = %v, %v; want removed", removed, err)
	}
	if _, err := s.Stat(d); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat after removal: %v", err)
	}
}
