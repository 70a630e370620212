package storage

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
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

// linkKeysOf counts the keys of both halves of d's links (a scan of every
// link, as only a test may do) and whether a drop marker is left.
func linkKeysOf(t *testing.T, s *Store, d string) (links, index int, marker bool) {
	t.Helper()
	err := s.db.View(func(txn *badger.Txn) error {
		err := eachItem(txn, []byte(linkPrefix), false, func(k, _ []byte) error {
			if bytes.HasSuffix(k, []byte(sep+d)) {
				links++
			}
			return nil
		})
		if err != nil {
			return err
		}
		err = eachItem(txn, linkIndexPrefixOf(d), false, func(_, _ []byte) error { index++; return nil })
		if err != nil {
			return err
		}
		_, err = txn.Get(dropKey(d))
		marker = err == nil
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return links, index, marker
}

// linkRepos links d into n repositories of ns, in transactions of
// linkChunk: many more links than one Link call each could write fast.
func linkRepos(t *testing.T, s *Store, ns, d string, n int) {
	t.Helper()
	const linkChunk = 2000
	rec := linkRecord{How: LinkServed, At: time.Now().UTC()}
	for i := 0; i < n; i += linkChunk {
		err := s.db.Update(func(txn *badger.Txn) error {
			for j := i; j < min(n, i+linkChunk); j++ {
				if err := setLink(txn, ns, fmt.Sprintf("team/repo%06d", j), d, rec); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// A blob's links go with it, however it goes (Remove, Evict, Prune), and
// another blob's links stay.
func TestRemovalDropsLinks(t *testing.T) {
	removals := map[string]func(s *Store, d string) error{
		"Remove": func(s *Store, d string) error { return s.Remove(d) },
		"Evict": func(s *Store, d string) error {
			_, err := s.Evict(0, nil)
			return err
		},
		"Prune": func(s *Store, d string) error {
			_, err := s.Prune(time.Now().Add(time.Hour), nil)
			return err
		},
	}
	for name, remove := range removals {
		t.Run(name, func(t *testing.T) {
			s := openStore(t, t.TempDir())
			d := commitBlob(t, s, []byte("evicted "+name), KindLayer).Digest
			kept := digestOf([]byte("not stored, linked"))
			for _, repo := range []string{"library/alpine", "library/debian", "team/app"} {
				for _, dg := range []string{d, kept} {
					if err := s.Link("docker.io", repo, dg, LinkServed); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := remove(s, d); err != nil {
				t.Fatal(err)
			}
			if ok, err := s.Linked("docker.io", "library/alpine", d); err != nil || ok {
				t.Errorf("Linked after %s = %v, %v; want false", name, ok, err)
			}
			if links, index, marker := linkKeysOf(t, s, d); links+index != 0 || marker {
				t.Errorf("after %s: %d link keys, %d index keys, marker %v left; want none", name, links, index, marker)
			}
			if hs, err := s.LinkHolders(kept); err != nil || len(hs) != 3 {
				t.Errorf("LinkHolders of another digest = %v, %v; want its 3 links", hs, err)
			}
		})
	}
}

// LinkHolders, RemoveUnreferenced (hasLinks) and Unlink's PushedElsewhere
// answer from the digest -> repositories index: without the index key a
// link record is not found, and the index follows Link's strongest source.
func TestLinkQueriesReadTheIndex(t *testing.T) {
	s := openStore(t, t.TempDir())
	d := commitBlob(t, s, []byte("indexed"), KindLayer).Digest
	for _, l := range []struct {
		repo string
		how  LinkSource
	}{{"a", LinkPushed}, {"a", LinkServed}, {"b", LinkServed}} {
		if err := s.Link("reg.local", l.repo, d, l.how); err != nil {
			t.Fatal(err)
		}
	}
	hs, err := s.LinkHolders(d)
	if want := "[{reg.local a pushed} {reg.local b served}]"; err != nil || fmt.Sprint(hs) != want {
		t.Errorf("LinkHolders = %v, %v; want %s", hs, err, want)
	}
	un, err := s.Unlink("reg.local", "b", d)
	if err != nil || !un.PushedElsewhere {
		t.Errorf("Unlink(b) = %+v, %v; want PushedElsewhere (a pushed it)", un, err)
	}
	if removed, err := s.RemoveUnreferenced(d); err != nil || removed {
		t.Fatalf("RemoveUnreferenced with a link left = %v, %v; want kept", removed, err)
	}
	// Only the index key of a's link goes: the blob now counts as unlinked.
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(linkIndexKey(d, "reg.local", "a")) }); err != nil {
		t.Fatal(err)
	}
	if hs, err := s.LinkHolders(d); err != nil || len(hs) != 0 {
		t.Errorf("LinkHolders without index keys = %v, %v; want none", hs, err)
	}
	if removed, err := s.RemoveUnreferenced(d); err != nil || !removed {
		t.Errorf("RemoveUnreferenced without index keys = %v, %v; want removed", removed, err)
	}
}

// A data dir written before the index (schema 2: link/ keys alone) gets
// the index at Open, and its links then answer and go as new ones do.
func TestOpenBuildsLinkIndexOfOldStore(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	d := commitBlob(t, s, []byte("old store"), KindLayer).Digest
	const n = 3000
	err = s.db.Update(func(txn *badger.Txn) error {
		for i := range n {
			rec := linkRecord{How: LinkServed, At: time.Now().UTC()}
			if i == 0 {
				rec.How = LinkPushed
			}
			if err := setJSON(txn, linkKey("docker.io", fmt.Sprintf("r%05d", i), d), rec); err != nil {
				return err
			}
		}
		return txn.Set([]byte(schemaKey), []byte("2"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	if links, index, _ := linkKeysOf(t, s, d); links != n || index != n {
		t.Fatalf("after Open: %d link keys, %d index keys; want %d of each", links, index, n)
	}
	hs, err := s.LinkHolders(d)
	if err != nil || len(hs) != MaxLinkHolders || hs[0] != (LinkHolder{"docker.io", "r00000", LinkPushed}) {
		t.Errorf("LinkHolders = %d holders starting %v, %v; want %d starting r00000 pushed", len(hs), hs[:min(1, len(hs))], err, MaxLinkHolders)
	}
	var v uint64
	if err := s.db.View(func(txn *badger.Txn) (err error) { v, err = getUint(txn, schemaKey); return err }); err != nil || v != schemaVersion {
		t.Errorf("schema after Open = %d, %v; want %d", v, err, schemaVersion)
	}
	if err := s.Remove(d); err != nil {
		t.Fatal(err)
	}
	if links, index, _ := linkKeysOf(t, s, d); links+index != 0 {
		t.Errorf("after Remove: %d link keys, %d index keys; want none", links, index)
	}
}

// A blob linked from more repositories than one transaction can unlink
// (25,000 links: 50,000 keys, against about 10,000 a transaction) is
// removed whole, by Remove and by Evict alike.
func TestRemoveBlobWithMoreLinksThanATransaction(t *testing.T) {
	const links = 25000
	for _, name := range []string{"Remove", "Evict"} {
		t.Run(name, func(t *testing.T) {
			s := openStore(t, t.TempDir())
			d := commitBlob(t, s, []byte("popular "+name), KindLayer).Digest
			small := commitBlob(t, s, []byte("few links "+name), KindLayer).Digest
			linkRepos(t, s, "docker.io", d, links)
			linkRepos(t, s, "docker.io", small, 3)
			var err error
			if name == "Remove" {
				err = s.Remove(d)
			} else {
				var evs []Evicted
				evs, err = s.Evict(0, nil)
				if len(evs) != 2 {
					t.Errorf("Evict removed %d blobs, want 2", len(evs))
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			if l, i, marker := linkKeysOf(t, s, d); l+i != 0 || marker {
				t.Errorf("%d link keys, %d index keys, marker %v left of %d links; want none", l, i, marker, links)
			}
			if _, err := s.Stat(d); !errors.Is(err, ErrNotFound) {
				t.Errorf("Stat after removal: %v, want ErrNotFound", err)
			}
		})
	}
}

// A removal cut short after its first transaction (a crash: the record is
// gone, links and the drop marker left) is finished by the next Open, and
// by a commit of the same digest before that.
func TestCutRemovalIsFinished(t *testing.T) {
	cut := func(t *testing.T, s *Store, body []byte) string {
		d := commitBlob(t, s, body, KindLayer).Digest
		linkRepos(t, s, "docker.io", d, 5)
		err := s.update(func(txn *badger.Txn) error {
			return errors.Join(txn.Delete(blobKey(d)), markDrop(txn, d, false))
		})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	t.Run("Open", func(t *testing.T) {
		dir := t.TempDir()
		s, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		d := cut(t, s, []byte("cut"))
		s.Close()
		s = openStore(t, dir)
		if l, i, marker := linkKeysOf(t, s, d); l+i != 0 || marker {
			t.Errorf("after Open: %d link keys, %d index keys, marker %v; want none", l, i, marker)
		}
	})
	t.Run("Commit", func(t *testing.T) {
		s := openStore(t, t.TempDir())
		body := []byte("cut, then stored again")
		d := cut(t, s, body)
		commitBlob(t, s, body, KindLayer)
		if l, i, marker := linkKeysOf(t, s, d); l+i != 0 || marker {
			t.Errorf("after a new commit: %d link keys, %d index keys, marker %v; want none", l, i, marker)
		}
	})
}

// Unlink of a digest the repository tags thousands of times (more tags
// than one transaction deletes) removes every one of them and the link.
func TestUnlinkMoreTagsThanATransaction(t *testing.T) {
	s := openStore(t, t.TempDir())
	d := commitBlob(t, s, []byte(`{"many":"tags"}`), KindManifest).Digest
	if err := s.Link("reg.local", "a", d, LinkPushed); err != nil {
		t.Fatal(err)
	}
	const tags = 15000
	for i := 0; i < tags; i += 2000 {
		err := s.db.Update(func(txn *badger.Txn) error {
			for j := i; j < min(tags, i+2000); j++ {
				if err := setJSON(txn, tagKey("reg.local", "a", fmt.Sprintf("v%05d", j)), TagRecord{Digest: d, Source: "push"}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	un, err := s.Unlink("reg.local", "a", d)
	if err != nil || len(un.Tags) != tags {
		t.Fatalf("Unlink = %d tags, %v; want %d", len(un.Tags), err, tags)
	}
	if left, err := s.keysUnder(tagsPrefix("reg.local", "a")); err != nil || len(left) != 0 {
		t.Errorf("%d tags left after Unlink, %v; want none", len(left), err)
	}
	if ok, _ := s.Linked("reg.local", "a", d); ok {
		t.Error("still linked after Unlink")
	}
}

// An eviction of many blobs whose links together overflow one transaction
// splits them into several and removes every blob and link.
func TestEvictSplitsBlobsWhoseLinksOverflowATransaction(t *testing.T) {
	s := openStore(t, t.TempDir())
	const blobs, links = 300, 20 // 12,600 keys against 6,553 a transaction: two or more
	ds := make([]string, blobs)
	for i := range ds {
		ds[i] = commitBlob(t, s, fmt.Appendf(nil, "blob %d", i), KindLayer).Digest
		linkRepos(t, s, "docker.io", ds[i], links)
	}
	evs, err := s.Evict(0, nil)
	if err != nil || len(evs) != blobs {
		t.Fatalf("Evict = %d blobs, %v; want %d", len(evs), err, blobs)
	}
	if _, n := s.Usage(); n != 0 {
		t.Errorf("%d blobs left, want none", n)
	}
	var left int
	err = s.db.View(func(txn *badger.Txn) error {
		for _, p := range []string{linkPrefix, linkIndexPrefix, dropPrefix} {
			if err := eachItem(txn, []byte(p), false, func(_, _ []byte) error { left++; return nil }); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || left != 0 {
		t.Errorf("%d link, index or drop keys left, %v; want none", left, err)
	}
}
