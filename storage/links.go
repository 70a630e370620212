package storage

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Links are written in two halves in one transaction: link/<ns>\x00<repo>
// \x00<digest> (the record, JSON) and its reverse, the index key
// repo/<digest>\x00<ns>\x00<repo> (the record's LinkSource as its value).
// What asks "who links this digest" (LinkHolders, Unlink, hasLinks, a
// blob's removal) reads the index: one prefix, O(links of that digest),
// never a scan of every link. setLink and the removals in this package are
// the only writers of either half.

// MaxLinkHolders bounds the repositories LinkHolders returns for one
// digest: an anonymous mount needs one the client may read, and a blob
// shared by more repositories than this is not worth a longer answer.
const MaxLinkHolders = 256

// linkIndexPrefix keys are the reverse of link/ keys (see above).
const linkIndexPrefix = "repo/"

func linkIndexKey(d, ns, repo string) []byte {
	return []byte(linkIndexPrefix + d + sep + ns + sep + repo)
}

func linkIndexPrefixOf(d string) []byte { return []byte(linkIndexPrefix + d + sep) }

// setLink writes both halves of the link of (ns, repo) to d.
func setLink(txn *badger.Txn, ns, repo, d string, rec linkRecord) error {
	if err := setJSON(txn, linkKey(ns, repo, d), rec); err != nil {
		return err
	}
	return txn.Set(linkIndexKey(d, ns, repo), []byte(rec.How))
}

// linkKeys returns both halves of the link of (ns, repo) to d: the record's
// key, then the index key.
func linkKeys(ns, repo, d string) [][]byte {
	return [][]byte{linkKey(ns, repo, d), linkIndexKey(d, ns, repo)}
}

// splitIndexKey returns the namespace and repository of an index key
// under linkIndexPrefixOf(d); ok is false for a key this build does not write.
func splitIndexKey(key []byte, d string) (ns, repo string, ok bool) {
	n, r, ok := bytes.Cut(key[len(linkIndexPrefixOf(d)):], []byte(sep))
	return string(n), string(r), ok && len(n) > 0 && len(r) > 0
}

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
// Cost: one prefix of the digest -> repositories index, stopping at the
// MaxLinkHolders-th holder: O(holders returned), whatever the number of
// other links, in one read transaction without locks held against writers.
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

// linkHolders reads up to limit holders of digest from the index.
func linkHolders(txn *badger.Txn, digest string, limit int) ([]LinkHolder, error) {
	var out []LinkHolder
	err := eachItem(txn, linkIndexPrefixOf(digest), true, func(key, value []byte) error {
		if len(out) >= limit {
			return errStopIter
		}
		if ns, repo, ok := splitIndexKey(key, digest); ok {
			out = append(out, LinkHolder{Namespace: ns, Repo: repo, How: LinkSource(value)})
		}
		return nil
	})
	return out, err
}

// hasLinks reports whether any repository links d: one seek in the index.
func hasLinks(txn *badger.Txn, d string) bool {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = linkIndexPrefixOf(d)
	it := txn.NewIterator(opts)
	defer it.Close()
	it.Rewind()
	return it.Valid()
}

// linkIndexSchema is the first schema version whose links all have their
// index key; Open builds the index of an older data dir (buildLinkIndex).
const linkIndexSchema = 3

// buildLinkIndex writes the index key of every link/ record, in write
// batches (badger commits them as they fill, so any number of links fits).
// It runs at Open, before anything else writes, on data dirs of a schema
// before linkIndexSchema. Rewriting an index key is harmless, so a crash
// part way only makes the next Open build it again.
func (s *Store) buildLinkIndex() (int, error) {
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	n := 0
	err := s.db.View(func(txn *badger.Txn) error {
		return eachItem(txn, []byte(linkPrefix), true, func(key, value []byte) error {
			ns, repo, d, ok := splitLinkKey(key)
			if !ok {
				return nil // not a link key this build writes
			}
			var rec linkRecord
			if err := json.Unmarshal(value, &rec); err != nil {
				return fmt.Errorf("link %q: %w", key, err)
			}
			n++
			return wb.Set(linkIndexKey(d, ns, repo), []byte(rec.How))
		})
	})
	if err == nil {
		err = wb.Flush()
	}
	if err != nil {
		return n, fmt.Errorf("storage: build the link index: %w", err)
	}
	return n, nil
}

// splitLinkKey parses link/<ns>\x00<repo>\x00<digest>.
func splitLinkKey(key []byte) (ns, repo, d string, ok bool) {
	rest := key[len(linkPrefix):]
	i := bytes.LastIndex(rest, []byte(sep))
	if i < 0 {
		return "", "", "", false
	}
	n, r, ok := bytes.Cut(rest[:i], []byte(sep))
	if !ok || len(n) == 0 || len(r) == 0 {
		return "", "", "", false
	}
	if _, err := parseDigest(string(rest[i+1:])); err != nil {
		return "", "", "", false
	}
	return string(n), string(r), string(rest[i+1:]), true
}
