package storage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// PinReasons lists the reasons that pin digest, sorted; none if unpinned.
func (s *Store) PinReasons(digest string) ([]string, error) {
	if _, err := parseDigest(digest); err != nil {
		return nil, err
	}
	var reasons []string
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = pinsPrefix(digest)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			reasons = append(reasons, string(bytes.TrimPrefix(it.Item().Key(), opts.Prefix)))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: pin reasons of %s: %w", digest, err)
	}
	return reasons, nil
}

// EachTag calls fn for every tag record, ordered by namespace, repository
// and tag, until fn returns an error (which EachTag returns). fn runs inside
// a read transaction: it must not call the Store's writing methods.
func (s *Store) EachTag(fn func(ns, repo, tag string, rec TagRecord) error) error {
	return s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(tagPrefix)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			parts := strings.Split(strings.TrimPrefix(string(it.Item().Key()), tagPrefix), sep)
			if len(parts) != 3 {
				continue // not a tag key of this schema
			}
			var rec TagRecord
			if err := it.Item().Value(func(b []byte) error { return json.Unmarshal(b, &rec) }); err != nil {
				return fmt.Errorf("storage: tag %q: %w", parts, err)
			}
			if err := fn(parts[0], parts[1], parts[2], rec); err != nil {
				return err
			}
		}
		return nil
	})
}

// EachPin calls fn for every (digest, reason) pin, until fn returns an
// error (which EachPin returns). fn runs inside a read transaction: it must
// not call the Store's writing methods.
func (s *Store) EachPin(fn func(digest, reason string) error) error {
	return s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = []byte(pinPrefix)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			d, reason, ok := strings.Cut(strings.TrimPrefix(string(it.Item().Key()), pinPrefix), sep)
			if !ok {
				continue
			}
			if err := fn(d, reason); err != nil {
				return err
			}
		}
		return nil
	})
}

// StillNamed reports which of digests a stored manifest still names (a
// ref/ key from a parent whose blob record exists): after an eviction,
// these are the layers that will be fetched again when asked for.
func (s *Store) StillNamed(digests []string) (map[string]bool, error) {
	want := make(map[string]bool, len(digests))
	for _, d := range digests {
		want[d] = true
	}
	named := map[string]bool{}
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = []byte(refPrefix)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			parent, child, ok := strings.Cut(strings.TrimPrefix(string(it.Item().Key()), refPrefix), sep)
			if !ok || !want[child] || named[child] {
				continue
			}
			if _, err := txn.Get(blobKey(parent)); err == nil {
				named[child] = true
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: still named: %w", err)
	}
	return named, nil
}
