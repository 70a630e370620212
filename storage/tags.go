package storage

import (
	"fmt"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	lru "github.com/hashicorp/golang-lru/v2"
)

// LinkSource says how a repository came to hold a blob or manifest.
type LinkSource string

// Link sources, weakest first: a later Link never downgrades a stronger one.
const (
	LinkServed    LinkSource = "served"    // fetched from upstream for this repository
	LinkConfirmed LinkSource = "confirmed" // upstream confirmed the repository holds it
	LinkPushed    LinkSource = "pushed"    // pushed (or replicated) into the repository
)

var linkRank = map[LinkSource]int{LinkServed: 1, LinkConfirmed: 2, LinkPushed: 3}

type linkRecord struct {
	How LinkSource `json:"how"`
	At  time.Time  `json:"at"`
}

// linkRefresh is how old a link's time may be before linking again
// rewrites it.
const linkRefresh = time.Minute

// Link records that repository repo of namespace ns holds digest, learnt
// as how. Linking again refreshes the time (at most once per linkRefresh);
// a weaker source never replaces
// a stronger one (pushed > confirmed > served). The blob itself need not be
// stored yet.
func (s *Store) Link(ns, repo, digest string, how LinkSource) error {
	if err := checkLinkArgs(ns, repo, digest, how); err != nil {
		return err
	}
	key := linkKey(ns, repo, digest)
	// Most calls repeat a link made moments ago (every reader of a fill
	// links its repository): a read, not a synced write, answers them.
	var old linkRecord
	err := s.db.View(func(txn *badger.Txn) error { return getJSON(txn, key, &old) })
	if err == nil && linkRank[old.How] >= linkRank[how] && time.Since(old.At) < linkRefresh {
		return nil
	}
	err = s.update(func(txn *badger.Txn) error {
		var old linkRecord
		if err := getJSON(txn, key, &old); err != nil && !isNotFound(err) {
			return err
		}
		rec := linkRecord{How: how, At: time.Now().UTC()}
		if linkRank[old.How] > linkRank[how] {
			rec.How = old.How
		}
		return setLink(txn, ns, repo, digest, rec)
	})
	if err != nil {
		return fmt.Errorf("storage: link %s/%s@%s: %w", ns, repo, digest, err)
	}
	return nil
}

func checkLinkArgs(ns, repo, digest string, how LinkSource) error {
	if err := checkNames(ns, repo); err != nil {
		return err
	}
	if _, err := parseDigest(digest); err != nil {
		return err
	}
	if linkRank[how] == 0 {
		return fmt.Errorf("storage: unknown link source %q", how)
	}
	return nil
}

// Linked reports whether Link was called for (ns, repo, digest).
func (s *Store) Linked(ns, repo, digest string) (bool, error) {
	if err := checkNames(ns, repo); err != nil {
		return false, err
	}
	if _, err := parseDigest(digest); err != nil {
		return false, err
	}
	var rec linkRecord
	err := s.db.View(func(txn *badger.Txn) error { return getJSON(txn, linkKey(ns, repo, digest), &rec) })
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("storage: linked %s/%s@%s: %w", ns, repo, digest, err)
	}
	return true, nil
}

// TagRecord is what a tag points at. Source is "upstream", "push",
// "replica:<site>" or "import:<bundle>"; only "upstream" tags are
// revalidated. Seq is assigned by PutTag.
type TagRecord struct {
	Digest    string    `json:"digest"`
	MediaType string    `json:"media_type"`
	Source    string    `json:"source"`
	CheckedAt time.Time `json:"checked_at"`
	Seq       uint64    `json:"seq"`
}

// PutTag points tag at rec.Digest, writing a ChangeTagPut entry to the
// change log in the same transaction: its cause and origin site come from
// rec.Source ("upstream": CauseFill; "push": CausePush; "replica:<site>":
// CauseReplica from that site; "import:<bundle>": CauseImport; anything
// else is refused). It returns the record as stored, with Seq set to the
// entry's (rec.Seq is ignored).
func (s *Store) PutTag(ns, repo, tag string, rec TagRecord) (TagRecord, error) {
	if err := checkNames(ns, repo, tag); err != nil {
		return TagRecord{}, err
	}
	if _, err := parseDigest(rec.Digest); err != nil {
		return TagRecord{}, err
	}
	cause, site, err := tagCause(rec.Source)
	if err != nil {
		return TagRecord{}, err
	}
	err = s.updateLogged(func(txn *badger.Txn, log *txnLog) error {
		n, err := log.add(Change{Kind: ChangeTagPut, Cause: cause, Site: site,
			Namespace: ns, Repo: repo, Tag: tag, Digest: rec.Digest})
		if err != nil {
			return err
		}
		rec.Seq = n
		return setJSON(txn, tagKey(ns, repo, tag), rec)
	})
	if err != nil {
		s.tagRecs.purge() // the write may or may not have landed
		return TagRecord{}, fmt.Errorf("storage: put tag %s/%s:%s: %w", ns, repo, tag, err)
	}
	s.tagRecs.wrote(string(tagKey(ns, repo, tag)), rec)
	return rec, nil
}

// MarkChecked sets the tag's CheckedAt to at, leaving everything else (and
// seq) alone: revalidation found the same digest, which the change log
// does not record. ErrNotFound if the tag does not exist.
func (s *Store) MarkChecked(ns, repo, tag string, at time.Time) error {
	if err := checkNames(ns, repo, tag); err != nil {
		return err
	}
	key := tagKey(ns, repo, tag)
	var rec TagRecord
	err := s.update(func(txn *badger.Txn) error {
		rec = TagRecord{}
		if err := getJSON(txn, key, &rec); err != nil {
			return err
		}
		rec.CheckedAt = at
		return setJSON(txn, key, rec)
	})
	if err != nil {
		s.tagRecs.purge()
		return fmt.Errorf("storage: mark checked %s/%s:%s: %w", ns, repo, tag, err)
	}
	s.tagRecs.wrote(string(key), rec)
	return nil
}

// Tag returns the record of a tag; ErrNotFound if it does not exist.
func (s *Store) Tag(ns, repo, tag string) (TagRecord, error) {
	if err := checkNames(ns, repo, tag); err != nil {
		return TagRecord{}, err
	}
	key := string(tagKey(ns, repo, tag))
	if rec, ok := s.tagRecs.get(key); ok {
		return rec, nil
	}
	gen := s.tagRecs.generation()
	var rec TagRecord
	err := s.db.View(func(txn *badger.Txn) error { return getJSON(txn, []byte(key), &rec) })
	if err != nil {
		return TagRecord{}, fmt.Errorf("storage: tag %s/%s:%s: %w", ns, repo, tag, err)
	}
	s.tagRecs.addIfUnchanged(gen, key, rec)
	return rec, nil
}

// tagCache keeps hot tag records in memory, so a tag hit reads no badger.
// A reader caches what it read only if no tag write happened meanwhile
// (the generation), so a record read before a write never hides it.
type tagCache struct {
	mu  sync.Mutex
	gen uint64
	lru *lru.Cache[string, TagRecord]
}

// tagCacheSize: about 200 bytes a record.
const tagCacheSize = 8192

func newTagCache() *tagCache {
	l, _ := lru.New[string, TagRecord](tagCacheSize) // errors only for size <= 0
	return &tagCache{lru: l}
}

func (c *tagCache) get(key string) (TagRecord, bool) { return c.lru.Get(key) }

func (c *tagCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

func (c *tagCache) addIfUnchanged(gen uint64, key string, rec TagRecord) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == gen {
		c.lru.Add(key, rec)
	}
}

// wrote records a committed write of key (rec: the record as stored).
func (c *tagCache) wrote(key string, rec TagRecord) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.lru.Add(key, rec)
}

// purge forgets everything (tag records were deleted).
func (c *tagCache) purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.lru.Purge()
}

// Tags returns every tag of exactly repository repo in namespace ns (not of
// repositories below it), sorted lexically. No tags is an empty result, not
// an error.
func (s *Store) Tags(ns, repo string) ([]string, error) {
	if err := checkNames(ns, repo); err != nil {
		return nil, err
	}
	tags, err := s.keysUnder(tagsPrefix(ns, repo))
	if err != nil {
		return nil, fmt.Errorf("storage: tags %s/%s: %w", ns, repo, err)
	}
	return tags, nil
}

// forget drops key, after a write that deleted it (or may have).
func (c *tagCache) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.lru.Remove(key)
}
