package storage

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// MaxLinkHolders bounds the repositories LinkHolders returns for one
// digest: an anonymous mount needs one the client may read, and a blob
// shared by more repositories than this is not worth a longer answer.
const MaxLinkHolders = 256

// LinkHolder is a repository linked to a digest (see Link).
type LinkHolder struct {
	Namespace string
	Repo      string
	How       LinkSource
}

// LinkHolders returns the repositories linked to digest (pushed, mounted,
// served or confirmed), at most MaxLinkHolders of them, in key order
// (namespace, then repository); none is an empty result, not an error.
//
// Cost: link/ keys are ordered by namespace and repository, not digest, so
// this scans the keys of every link record (as Unlink and
// RemoveUnreferenced do), reading the values of matches only: O(links)
// key comparisons in one read transaction, without locks held against
// writers. It stops at the MaxLinkHolders-th match.
func (s *Store) LinkHolders(digest string) ([]LinkHolder, error) {
	if _, err := parseDigest(digest); err != nil {
		return nil, err
	}
	var out []LinkHolder
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		out, err = linkHolders(txn, digest, MaxLinkHolders)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("storage: link holders of %s: %w", digest, err)
	}
	return out, nil
}

// linkHolders scans link/ keys for those ending in digest, up to limit.
func linkHolders(txn *badger.Txn, digest string, limit int) ([]LinkHolder, error) {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = []byte(linkPrefix)
	it := txn.NewIterator(opts)
	defer it.Close()
	suffix := []byte(sep + digest)
	var out []LinkHolder
	for it.Rewind(); it.Valid() && len(out) < limit; it.Next() {
		key := it.Item().Key()
		if !bytes.HasSuffix(key, suffix) {
			continue
		}
		ns, repo, ok := bytes.Cut(key[len(linkPrefix):len(key)-len(suffix)], []byte(sep))
		if !ok {
			continue // not a link key this build writes
		}
		var rec linkRecord
		if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &rec) }); err != nil {
			return nil, err
		}
		out = append(out, LinkHolder{Namespace: string(ns), Repo: string(repo), How: rec.How})
	}
	return out, nil
}
