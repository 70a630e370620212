package storage

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Deletes: the storage half of the OCI content management API (DELETE on
// /manifests/<tag>, /manifests/<digest> and /blobs/<digest>). A repository
// stops holding a digest when its link goes; the bytes go only when no
// repository links them and nothing pins them (RemoveUnreferenced).

// DeleteTag removes tag from repository repo of namespace ns (a client's
// delete), writing a ChangeTagDelete entry with the digest it pointed at
// (CauseDelete). ErrNotFound if there is no such tag.
func (s *Store) DeleteTag(ns, repo, tag string) error {
	if err := checkNames(ns, repo, tag); err != nil {
		return err
	}
	key := tagKey(ns, repo, tag)
	err := s.updateLogged(func(txn *badger.Txn, log *txnLog) error {
		var rec TagRecord
		if err := getJSON(txn, key, &rec); err != nil {
			return err
		}
		_, err := log.add(Change{Kind: ChangeTagDelete, Cause: CauseDelete,
			Namespace: ns, Repo: repo, Tag: tag, Digest: rec.Digest})
		if err != nil {
			return err
		}
		return txn.Delete(key)
	})
	s.tagRecs.forget(string(key))
	if err != nil {
		return fmt.Errorf("storage: delete tag %s/%s:%s: %w", ns, repo, tag, err)
	}
	return nil
}

// Unlinked is what Unlink removed, and what still holds the digest.
type Unlinked struct {
	// Tags of the repository that pointed at the digest, removed with it.
	Tags []string
	// Subjects of the referrer entries (PutReferrer) removed with it: the
	// digest was a referrer of these in the repository.
	Subjects []string
	// PushedElsewhere: another repository still links the digest as
	// pushed (LinkPushed), so its push pin must stay.
	PushedElsewhere bool
}

// Unlink makes repository repo of namespace ns stop holding digest (a
// client's delete): its link, the repository's tags pointing at digest and
// its referrer entries naming digest as the referrer go. They fit one
// transaction unless the repository has thousands of them; then the tags
// and entries go in budgeted transactions first and the link in the last,
// so an Unlink cut short leaves the link for a retry. Each transaction
// writes a ChangeUnlink entry (CauseDelete): one, unless it took several.
// ErrNotFound if the repository does not link digest. Other repositories'
// links are read from the digest's index (see links.go), not a scan.
func (s *Store) Unlink(ns, repo, digest string) (Unlinked, error) {
	if err := checkNames(ns, repo); err != nil {
		return Unlinked{}, err
	}
	if _, err := parseDigest(digest); err != nil {
		return Unlinked{}, err
	}
	var out Unlinked
	var err error
	for first := true; ; first = false {
		var step Unlinked
		var done bool
		step, done, err = s.unlinkStep(ns, repo, digest)
		out.Tags = append(out.Tags, step.Tags...)
		out.Subjects = append(out.Subjects, step.Subjects...)
		out.PushedElsewhere = step.PushedElsewhere
		if !first && errors.Is(err, ErrNotFound) {
			err = nil // a concurrent Unlink finished it
		}
		if err != nil || done {
			break
		}
	}
	if len(out.Tags) > 0 || err != nil {
		s.tagRecs.purge()
	}
	if err != nil {
		return Unlinked{}, fmt.Errorf("storage: unlink %s/%s@%s: %w", ns, repo, digest, err)
	}
	return out, nil
}

// unlinkStep is one transaction of Unlink: done when it removed the link.
func (s *Store) unlinkStep(ns, repo, digest string) (out Unlinked, done bool, err error) {
	link := linkKeys(ns, repo, digest)
	err = s.updateLogged(func(txn *badger.Txn, log *txnLog) error {
		out, done = Unlinked{}, false
		if _, err := txn.Get(link[0]); err != nil {
			if errors.Is(err, badger.ErrKeyNotFound) {
				return ErrNotFound
			}
			return err
		}
		b := s.newBudget()
		b.take(link...)
		dels, complete, err := unlinkKeys(txn, ns, repo, digest, b, &out)
		if err != nil {
			return err
		}
		if complete {
			if out.PushedElsewhere, err = pushedElsewhere(txn, ns, repo, digest); err != nil {
				return err
			}
			dels, done = append(dels, link...), true
		}
		if _, err := log.add(Change{Kind: ChangeUnlink, Cause: CauseDelete,
			Namespace: ns, Repo: repo, Digest: digest}); err != nil {
			return err
		}
		return deleteKeys(txn, dels)
	})
	return out, done, err
}

// unlinkKeys collects, within b, the tags of repository (ns, repo)
// pointing at digest and its referrer entries naming digest, filling out.
// complete is false if some did not fit. Iterators are created before any
// delete (see deleteBatchMeta).
func unlinkKeys(txn *badger.Txn, ns, repo, digest string, b *txnBudget, out *Unlinked) (dels [][]byte, complete bool, err error) {
	complete = true
	tp := tagsPrefix(ns, repo)
	err = eachItem(txn, tp, true, func(key []byte, value []byte) error {
		var rec TagRecord
		if err := json.Unmarshal(value, &rec); err != nil {
			return err
		}
		if rec.Digest != digest {
			return nil
		}
		if complete = b.take(key); !complete {
			return errStopIter
		}
		dels = append(dels, bytes.Clone(key))
		out.Tags = append(out.Tags, string(key[len(tp):]))
		return nil
	})
	if err != nil || !complete {
		return dels, false, err
	}
	rp := referrersRepoPrefix(ns, repo)
	suffix := []byte(sep + digest)
	err = eachItem(txn, rp, false, func(key, _ []byte) error {
		if !bytes.HasSuffix(key, suffix) {
			return nil
		}
		if complete = b.take(key); !complete {
			return errStopIter
		}
		dels = append(dels, bytes.Clone(key))
		out.Subjects = append(out.Subjects, string(key[len(rp):len(key)-len(suffix)]))
		return nil
	})
	return dels, complete && err == nil, err
}

// pushedElsewhere reports whether a repository other than (ns, repo)
// links digest as pushed: a walk of the digest's index, not of every link.
func pushedElsewhere(txn *badger.Txn, ns, repo, digest string) (bool, error) {
	found := false
	err := eachItem(txn, linkIndexPrefixOf(digest), true, func(key, value []byte) error {
		n, r, ok := splitIndexKey(key, digest)
		if ok && (n != ns || r != repo) && LinkSource(value) == LinkPushed {
			found = true
			return errStopIter
		}
		return nil
	})
	return found, err
}

// eachItem calls fn for each key under prefix, with its value when values
// is set (nil otherwise). fn must copy what it keeps; it may return
// errStopIter to end the walk without an error.
func eachItem(txn *badger.Txn, prefix []byte, values bool, fn func(key, value []byte) error) error {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = values
	opts.Prefix = prefix
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		var v []byte
		if values {
			var err error
			if v, err = item.ValueCopy(nil); err != nil {
				return err
			}
		}
		if err := fn(item.Key(), v); err != nil {
			if errors.Is(err, errStopIter) {
				return nil
			}
			return err
		}
	}
	return nil
}

// RemoveUnreferenced removes blob digest, as Remove does, unless a
// repository still links it or a reason still pins it: the last step of a
// client's delete, logged as a ChangeEvict entry with CauseDelete. It
// reports whether it removed the blob; a blob not stored is not an error
// (false).
func (s *Store) RemoveUnreferenced(digest string) (bool, error) {
	if _, err := parseDigest(digest); err != nil {
		return false, err
	}
	unlock := s.lockDigest(digest)
	defer unlock()
	_, err := s.removeLocked(digest, func(txn *badger.Txn, d string) bool {
		return hasPins(txn, d) || hasLinks(txn, d)
	}, removeBlobFile, CauseDelete)
	switch {
	case errors.Is(err, errKept) || errors.Is(err, ErrNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("storage: remove unreferenced %s: %w", digest, err)
	}
	return true, nil
}

// PutReferrer records that manifest digest, described by desc (an OCI
// descriptor as JSON, stored as is), has subject in repository repo of
// namespace ns. Unlink of digest in that repository removes the entry.
func (s *Store) PutReferrer(ns, repo, subject, digest string, desc []byte) error {
	if err := checkNames(ns, repo); err != nil {
		return err
	}
	for _, d := range []string{subject, digest} {
		if _, err := parseDigest(d); err != nil {
			return err
		}
	}
	if !json.Valid(desc) {
		return fmt.Errorf("storage: referrer %s of %s: descriptor is not JSON", digest, subject)
	}
	err := s.update(func(txn *badger.Txn) error { return txn.Set(referrerKey(ns, repo, subject, digest), desc) })
	if err != nil {
		return fmt.Errorf("storage: put referrer %s/%s %s -> %s: %w", ns, repo, digest, subject, err)
	}
	return nil
}

// Referrers returns the descriptors PutReferrer recorded for subject in
// repository repo of namespace ns, ordered by referrer digest; none is an
// empty result.
func (s *Store) Referrers(ns, repo, subject string) ([][]byte, error) {
	if err := checkNames(ns, repo); err != nil {
		return nil, err
	}
	if _, err := parseDigest(subject); err != nil {
		return nil, err
	}
	var out [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		return eachItem(txn, referrersPrefix(ns, repo, subject), true, func(_, v []byte) error {
			out = append(out, v)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("storage: referrers of %s in %s/%s: %w", subject, ns, repo, err)
	}
	return out, nil
}

// referrer/<ns>\x00<repo>\x00<subject>\x00<referrer> -> descriptor JSON.
const referrerPrefix = "referrer/"

func referrersRepoPrefix(ns, repo string) []byte {
	return []byte(referrerPrefix + ns + sep + repo + sep)
}

func referrersPrefix(ns, repo, subject string) []byte {
	return []byte(referrerPrefix + ns + sep + repo + sep + subject + sep)
}

func referrerKey(ns, repo, subject, d string) []byte {
	return []byte(referrerPrefix + ns + sep + repo + sep + subject + sep + d)
}
