package storage

import (
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// pinRecord is the JSON value of a pin/<digest>\x00<reason> key.
type pinRecord struct {
	At time.Time `json:"at"`
}

// Pin keeps digest from eviction for reason (for example
// "config:docker.io/library/alpine:3.19", "cli", "push"): a digest is
// pinned while any reason remains. Pinning again with the same reason is a
// no-op apart from the time; the blob need not be stored (yet). Remove
// still removes a pinned blob, and keeps its pins. ErrInvalidName for an
// empty reason or one containing NUL.
func (s *Store) Pin(digest, reason string) error {
	if err := checkPinArgs(digest, reason); err != nil {
		return err
	}
	// Under the digest lock, a pin is either seen by an eviction's check
	// or written after that eviction has finished.
	unlock := s.lockDigest(digest)
	defer unlock()
	err := s.update(func(txn *badger.Txn) error {
		return setJSON(txn, pinKey(digest, reason), pinRecord{At: s.now().UTC()})
	})
	if err != nil {
		return fmt.Errorf("storage: pin %s (%s): %w", digest, reason, err)
	}
	return nil
}

// Unpin drops one reason to keep digest; no error if it was not pinned for
// that reason.
func (s *Store) Unpin(digest, reason string) error {
	if err := checkPinArgs(digest, reason); err != nil {
		return err
	}
	err := s.update(func(txn *badger.Txn) error { return txn.Delete(pinKey(digest, reason)) })
	if err != nil {
		return fmt.Errorf("storage: unpin %s (%s): %w", digest, reason, err)
	}
	return nil
}

func checkPinArgs(digest, reason string) error {
	if _, err := parseDigest(digest); err != nil {
		return err
	}
	return checkNames(reason)
}

// Pinned reports whether any reason pins digest.
func (s *Store) Pinned(digest string) (bool, error) {
	if _, err := parseDigest(digest); err != nil {
		return false, err
	}
	var pinned bool
	err := s.db.View(func(txn *badger.Txn) error {
		pinned = hasPins(txn, digest)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("storage: pinned %s: %w", digest, err)
	}
	return pinned, nil
}

// hasPins reports whether a pin/<d>\x00 key exists in txn.
func hasPins(txn *badger.Txn, d string) bool {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = pinsPrefix(d)
	it := txn.NewIterator(opts)
	defer it.Close()
	it.Rewind()
	return it.Valid()
}

// pinnedDigests returns the set of digests with at least one pin.
func (s *Store) pinnedDigests() (map[string]bool, error) {
	keys, err := s.keysUnder([]byte(pinPrefix))
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool)
	for _, k := range keys {
		d, _, _ := strings.Cut(k, sep)
		out[d] = true
	}
	return out, nil
}

// Closure returns digest and every digest reachable from it through the
// manifest graph (ref/ keys recorded by PutManifest: an index's manifests,
// an image's config and layers, a referrer's subject), each once, digest
// first, then breadth first. Children need not be stored. It is what to pin
// to keep a whole image.
func (s *Store) Closure(digest string) ([]string, error) {
	if _, err := parseDigest(digest); err != nil {
		return nil, err
	}
	out := []string{digest}
	seen := map[string]bool{digest: true}
	for i := 0; i < len(out); i++ {
		children, err := s.keysUnder(refsPrefix(out[i]))
		if err != nil {
			return nil, fmt.Errorf("storage: closure %s: %w", digest, err)
		}
		for _, c := range children {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	return out, nil
}

// PinnedBlobs counts the blobs with at least one pin (a scan of the pin/
// keys, without their values).
func (s *Store) PinnedBlobs() (int, error) {
	pinned, err := s.pinnedDigests()
	return len(pinned), err
}
