package storage

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	lru "github.com/hashicorp/golang-lru/v2"
)

// Sentinel error kinds. Methods wrap them with context; test with errors.Is.
var (
	// ErrNotFound: no such blob, tag or record.
	ErrNotFound = errors.New("not found")
	// ErrInvalidDigest: not "sha256:<64 lowercase hex>" nor
	// "sha512:<128 lowercase hex>".
	ErrInvalidDigest = errors.New("invalid digest")
	// ErrInvalidName: an empty namespace, repository or tag, or one that
	// contains a NUL byte (the key field separator).
	ErrInvalidName = errors.New("invalid name")
	// ErrDigestMismatch: the bytes written do not hash to the expected digest.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrSizeMismatch: more or fewer bytes were written than announced.
	ErrSizeMismatch = errors.New("size mismatch")
)

// Directories under the data directory.
const (
	blobsDir      = "blobs"
	tmpDir        = "tmp"
	metaDir       = "meta"
	quarantineDir = "quarantine" // files whose content does not match their name
	cleanFile     = "clean"      // written by Close, removed by Open (see reconcile.go)
)

// Option configures Open.
type Option func(*options)

type options struct {
	logger    *slog.Logger
	site      string
	reserve   int64 // -1: the default for the file system
	retention time.Duration
}

// WithLogger sets the logger for the store and for badger (bridged to slog).
// The default discards everything; nil means the default.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// WithReserve sets how many bytes of the data directory's file system blob
// writes leave free for badger (see space.go); 0 turns the check off. The
// default is a quarter of the file system, at most 64 MiB.
func WithReserve(n int64) Option {
	return func(o *options) { o.reserve = n }
}

// WithChangeRetention sets how long change log entries are kept
// (KeepChangeLog); it must be > 0. The default is DefaultChangeRetention.
func WithChangeRetention(d time.Duration) Option {
	return func(o *options) { o.retention = d }
}

// WithSite sets the site recorded in node.json at first start (default
// "default"). It is ignored when node.json already exists: a node's identity
// never changes.
func WithSite(site string) Option {
	return func(o *options) { o.site = site }
}

// Store is the on-disk state of one cairn node. All methods are safe for
// concurrent use. Only one Store (one process) may open a data directory at a
// time: badger holds a lock on meta/.
type Store struct {
	dir     string
	log     *slog.Logger
	node    NodeInfo
	db      *badger.DB
	now     func() time.Time             // the clock; tests replace it right after Open
	infos   *lru.Cache[string, BlobInfo] // hot blob/ records, so a hit costs no transaction
	tagRecs *tagCache                    // hot tag/ records, likewise
	seqMu   sync.Mutex                   // serialises the transactions that write the change log (updateLogged)
	feed    *changeFeed                  // wakes WaitChange after those commit
	// retention is how long change log entries are kept (KeepChangeLog).
	retention time.Duration

	// digestLocks serialise, per digest (striped), what publishes or
	// removes a blob: Writer.commit, removal (Evict, Remove, Verify) and
	// Pin. See lockDigest.
	digestLocks [digestLockStripes]sync.Mutex
	uploadLocks sessionLocks  // serialise the operations on each upload session (upload.go)
	uploadCount uploadCounts  // open upload sessions, in all and per user (upload_open.go)
	infoMu      sync.Mutex    // orders additions to infos against removals (see cacheInfo)
	removals    atomic.Uint64 // bumped under infoMu by every removal

	accessMu  sync.Mutex
	pending   map[string]time.Time // Touch times not yet written to badger
	flushMu   sync.Mutex           // serialises access-time flushes (see flushLocked)
	lastTouch atomic.Int64         // the latest Touch time, Unix ns (see monotonic)

	usageMu   sync.Mutex
	usedBytes int64 // sum of the sizes of blob/ records
	usedBlobs int   // number of blob/ records

	dirty   atomic.Bool // files and metadata may disagree: Close must not mark the stop clean
	reserve int64       // bytes of the file system blob writes leave free (space.go)

	verifyFailures atomic.Int64 // files quarantined since Open (VerifyFailures)
	closeOnce      sync.Once
	closeErr       error
}

// blobInfoCacheSize is how many blob records stay in memory (about 200
// bytes each). Every write of a blob/ record goes through recordBlob, which
// refreshes it; whatever removes blobs must drop them here too.
const blobInfoCacheSize = 8192

// Open opens (creating if needed) the data directory dataDir: it creates the
// layout, opens badger, empties tmp/ (leftovers of a crash) but for the
// files of live upload sessions (see reconcileUploads), writes node.json
// at first start, checks the schema version (refusing a newer one, and
// upgrading an older one), finishes removals a crash cut short, drops
// blob metadata whose file is missing and computes Usage. After an unclean
// stop it also adopts or quarantines blob files that have no metadata (see
// reconcile.go). Close the Store when done.
func Open(dataDir string, opts ...Option) (*Store, error) {
	o := options{logger: slog.New(slog.DiscardHandler), site: "default", reserve: -1, retention: DefaultChangeRetention}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	if o.site == "" {
		return nil, errors.New("storage: site must not be empty")
	}
	if o.retention <= 0 {
		return nil, fmt.Errorf("storage: change log retention must be > 0, got %s", o.retention)
	}
	if err := makeLayout(dataDir); err != nil {
		return nil, err
	}
	// Badger first: its directory lock keeps a second process from wiping
	// the tmp/ files of the first.
	db, err := badger.Open(badgerOptions(filepath.Join(dataDir, metaDir), o.logger))
	if err != nil {
		return nil, fmt.Errorf("storage: open badger in %s: %w", dataDir, err)
	}
	infos, _ := lru.New[string, BlobInfo](blobInfoCacheSize) // errors only for size <= 0
	s := &Store{dir: dataDir, log: o.logger, db: db, now: time.Now, infos: infos, tagRecs: newTagCache(),
		pending: make(map[string]time.Time), reserve: o.reserve, retention: o.retention,
		feed: newChangeFeed()}
	if s.reserve < 0 {
		if size, _, err := fsSpace(dataDir); err == nil {
			s.reserve = reserveFor(size)
		} else {
			s.reserve = 0
		}
	}
	if err := s.init(o.site); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// init runs the start-up steps that need the open database.
func (s *Store) init(site string) error {
	keep, err := s.reconcileUploads()
	if err != nil {
		return err
	}
	if err := cleanTmp(filepath.Join(s.dir, tmpDir), keep); err != nil {
		return err
	}
	node, err := loadOrCreateNode(s.dir, site)
	if err != nil {
		return err
	}
	s.node = node
	if node.Site != site {
		s.log.Warn("site differs from node.json; keeping node.json",
			"site", site, "recorded_site", node.Site)
	}
	if err := s.checkSchema(); err != nil {
		return err
	}
	if err := s.finishDrops(); err != nil {
		return fmt.Errorf("storage: finish removals: %w", err)
	}
	seq, err := s.Seq()
	if err != nil {
		return err
	}
	s.feed.publish(seq)
	clean, err := takeCleanMarker(s.dir)
	if err != nil {
		return err
	}
	return s.reconcile(clean)
}

// makeLayout creates the data directory and its subdirectories.
func makeLayout(dir string) error {
	for _, sub := range []string{blobsDir, tmpDir, metaDir} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return fmt.Errorf("storage: create data dir: %w", err)
		}
	}
	return nil
}

// cleanTmp removes everything inside dir but the names in keep, keeping
// dir itself.
func cleanTmp(dir string, keep map[string]bool) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("storage: clean tmp: %w", err)
	}
	for _, e := range entries {
		if keep[e.Name()] {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("storage: clean tmp: %w", err)
		}
	}
	return nil
}

// Close wakes WaitChange callers (ErrClosed), writes pending access times
// (see Touch), closes the metadata database and, if files and metadata
// agree, marks the stop clean so that the next Open skips the walk of
// blobs/. Writers still open must not be used afterwards, nor may any
// other method but WaitChange run concurrently with or after Close. Close
// is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Store) close() error {
	s.feed.close() // WaitChange returns ErrClosed
	// Lost access times only blur the eviction order: the stop is still clean.
	ferr := s.FlushAccess()
	if !s.dirty.Load() {
		if err := s.saveUsage(); err != nil {
			s.dirty.Store(true) // the next Open sums the records instead
			ferr = errors.Join(ferr, fmt.Errorf("storage: save usage: %w", err))
		}
	}
	if err := s.db.Close(); err != nil {
		return errors.Join(ferr, fmt.Errorf("storage: close badger: %w", err))
	}
	if s.dirty.Load() {
		return ferr
	}
	return errors.Join(ferr, markClean(s.dir))
}

// Node returns the node identity recorded in node.json.
func (s *Store) Node() NodeInfo { return s.node }

// DataDir returns the data directory the store was opened on.
func (s *Store) DataDir() string { return s.dir }
