package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// The change log: every tag write, manifest write, tag delete, unlink and
// blob removal writes one log/<seq> entry in its own transaction, with seq
// bumped by one per entry, so the log holds exactly what committed, in
// commit order, with no gaps. Replication and events follow it with
// Changes and WaitChange; KeepChangeLog compacts it after a retention
// window, from the oldest entry on, so what is left is always a suffix of
// the log.

// ErrChangesCompacted: entries after the position a consumer asked from
// are no longer in the log (compacted after the retention window), or the
// position is past the log's last seq (it belongs to another data dir).
// The consumer must rescan what it follows, then go on from Seq.
var ErrChangesCompacted = errors.New("change log entries compacted")

// ErrClosed: the store was closed (WaitChange).
var ErrClosed = errors.New("store closed")

// ChangeKind is what a change log entry records.
type ChangeKind string

// Change kinds, with the fields of Change each one sets (all set Digest).
const (
	// ChangeTagPut: tag Namespace/Repo:Tag now points at Digest.
	ChangeTagPut ChangeKind = "tag-put"
	// ChangeTagDelete: tag Namespace/Repo:Tag, which pointed at Digest, is gone.
	ChangeTagDelete ChangeKind = "tag-delete"
	// ChangeManifestPut: manifest Digest was stored for Namespace/Repo.
	ChangeManifestPut ChangeKind = "manifest-put"
	// ChangeUnlink: Namespace/Repo no longer holds Digest, nor any of its
	// tags pointing at it. An Unlink too large for one transaction writes
	// one such entry per transaction, all alike.
	ChangeUnlink ChangeKind = "unlink"
	// ChangeEvict: blob Digest left this node (Namespace and Repo are
	// empty), with every link to it and, for a manifest, every tag
	// pointing at it: one entry whatever their number.
	ChangeEvict ChangeKind = "evict"
)

// Cause is why a change happened.
type Cause string

// Causes.
const (
	CausePush    Cause = "push"    // a client pushed it (OCI API)
	CauseImport  Cause = "import"  // an air-gap bundle was imported
	CauseFill    Cause = "fill"    // a pull fetched it from an upstream (tag source "upstream")
	CauseReplica Cause = "replica" // replication from another site wrote it (Change.Site names that site)
	CauseDelete  Cause = "delete"  // a client's delete (OCI API)
	CauseEvict   Cause = "evict"   // eviction to keep the cache under its size
	CauseAdmin   Cause = "admin"   // an admin call: remove, prune, verify
)

func (c Cause) valid() bool {
	switch c {
	case CausePush, CauseImport, CauseFill, CauseReplica, CauseDelete, CauseEvict, CauseAdmin:
		return true
	}
	return false
}

// Change is one entry of the change log.
type Change struct {
	Seq       uint64     // its position: the store's seq after the transaction that wrote it
	Time      time.Time  // when it was written, by this node's clock
	Kind      ChangeKind // what changed
	Cause     Cause      // why
	Site      string     // where the change came from: this node's site unless a replication write named another
	Namespace string     // empty for ChangeEvict
	Repo      string     // empty for ChangeEvict
	Tag       string     // ChangeTagPut and ChangeTagDelete only
	Digest    string
}

// ManifestWrite names, for the change log, the repository a PutManifest
// is for and why it happens.
type ManifestWrite struct {
	Namespace, Repo string
	// Cause: CausePush, CauseImport, CauseFill, CauseReplica or CauseAdmin.
	Cause Cause
	// Site the manifest came from: required with CauseReplica; empty
	// means this node's site.
	Site string
}

func (w ManifestWrite) check() error {
	if err := checkNames(w.Namespace, w.Repo); err != nil {
		return err
	}
	switch {
	case !w.Cause.valid() || w.Cause == CauseDelete || w.Cause == CauseEvict:
		return fmt.Errorf("storage: manifest write cause %q: want push, import, fill, replica or admin", w.Cause)
	case w.Cause == CauseReplica && w.Site == "":
		return errors.New("storage: a replica manifest write must name its site")
	}
	return nil
}

// tagCause returns the cause and origin site ("": this node's) of a tag
// write from its TagRecord.Source.
func tagCause(source string) (Cause, string, error) {
	kind, arg, _ := strings.Cut(source, ":")
	switch {
	case source == "upstream":
		return CauseFill, "", nil
	case source == "push":
		return CausePush, "", nil
	case kind == "replica" && arg != "":
		return CauseReplica, arg, nil
	case kind == "import" && arg != "":
		return CauseImport, "", nil
	}
	return "", "", fmt.Errorf("storage: tag source %q: want upstream, push, replica:<site> or import:<bundle>", source)
}

// log/ keys: the prefix and the seq as 8 bytes big endian, so that keys
// sort in seq order.
const changePrefix = "log/"

func changeKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(changePrefix), seq)
}

func changeSeq(key []byte) (uint64, bool) {
	if len(key) != len(changePrefix)+8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(key[len(changePrefix):]), true
}

// Entries are binary: changeV1, 8-byte big-endian Unix nanoseconds, then
// kind, cause, site, namespace, repository, tag and digest, each uvarint
// length-prefixed. The seq is the key's.
const changeV1 = 0x01

func (c Change) encode() []byte {
	fields := [...]string{string(c.Kind), string(c.Cause), c.Site, c.Namespace, c.Repo, c.Tag, c.Digest}
	n := 9
	for _, f := range fields {
		n += binary.MaxVarintLen16 + len(f)
	}
	b := make([]byte, 0, n)
	b = append(b, changeV1)
	b = binary.BigEndian.AppendUint64(b, unixNano(c.Time))
	for _, f := range fields {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}

var errBadChange = errors.New("malformed change log entry")

// decodeChange reads an entry's value; b is not retained.
func decodeChange(seq uint64, b []byte) (Change, error) {
	t, err := changeTime(b)
	if err != nil {
		return Change{}, err
	}
	b = b[9:]
	var fields [7]string
	for i := range fields {
		f, rest, ok := lengthPrefixed(b)
		if !ok {
			return Change{}, errBadChange
		}
		fields[i], b = string(f), rest
	}
	if len(b) != 0 {
		return Change{}, errBadChange
	}
	return Change{Seq: seq, Time: t, Kind: ChangeKind(fields[0]), Cause: Cause(fields[1]), Site: fields[2],
		Namespace: fields[3], Repo: fields[4], Tag: fields[5], Digest: fields[6]}, nil
}

// changeTime reads only the time of an entry's value.
func changeTime(b []byte) (time.Time, error) {
	if len(b) < 9 || b[0] != changeV1 {
		return time.Time{}, errBadChange
	}
	return fromUnixNano(binary.BigEndian.Uint64(b[1:])), nil
}

// txnLog writes the change log entries of one updateLogged transaction.
type txnLog struct {
	s    *Store
	txn  *badger.Txn
	seq  uint64 // the last seq assigned (valid once read)
	read bool
	n    int // entries written
}

// complete fills in what an entry's writer leaves out: the time and,
// unless a replication write named one, this node's site.
func (l *txnLog) complete(c Change) Change {
	if c.Time.IsZero() {
		c.Time = l.s.now().UTC()
	}
	if c.Site == "" {
		c.Site = l.s.node.Site
	}
	return c
}

// add writes c as the next entry and returns its seq.
func (l *txnLog) add(c Change) (uint64, error) {
	if !l.read {
		n, err := getUint(l.txn, seqKey)
		if err != nil {
			return 0, fmt.Errorf("read seq: %w", err)
		}
		l.seq, l.read = n, true
	}
	c = l.complete(c)
	if err := l.txn.Set(changeKey(l.seq+1), c.encode()); err != nil {
		return 0, err
	}
	l.seq++
	l.n++
	return l.seq, nil
}

// cost is what an entry for c takes of a transaction, as badger counts it
// (see txnBudget).
func (l *txnLog) cost(c Change) int64 {
	return int64(len(changeKey(0))+len(l.complete(c).encode())) + 12
}

// finish records the new seq, if entries were written.
func (l *txnLog) finish() error {
	if l.n == 0 {
		return nil
	}
	return l.txn.Set([]byte(seqKey), []byte(strconv.FormatUint(l.seq, 10)))
}

// updateLogged is update for transactions that write change log entries
// (through the txnLog fn gets; none is fine). They are serialised, so that
// they do not all conflict on the seq key and commit in seq order; the
// feed is told after the commit.
func (s *Store) updateLogged(fn func(*badger.Txn, *txnLog) error) error {
	s.seqMu.Lock()
	defer s.seqMu.Unlock()
	var log *txnLog
	err := s.update(func(txn *badger.Txn) error {
		log = &txnLog{s: s, txn: txn}
		if err := fn(txn, log); err != nil {
			return err
		}
		return log.finish()
	})
	switch {
	case err == nil && log.n > 0:
		s.feed.publish(log.seq)
	case err != nil:
		// A commit that failed late may have landed: tell the feed what is there.
		if n, serr := s.Seq(); serr == nil {
			s.feed.publish(n)
		}
	}
	return err
}
