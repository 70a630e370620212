package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/cairn-mirror/cairn/internal/breaker"
	"github.com/cairn-mirror/cairn/internal/oci"
	"github.com/cairn-mirror/cairn/internal/route"
	"github.com/cairn-mirror/cairn/storage"
)

// Namespace is one configured namespace as the cache sees it.
type Namespace struct {
	Name string
	// Origin is the upstream registry of a mirror namespace; nil for a
	// hosted namespace, which serves only what it holds.
	Origin Origin
	// TagTTL is how long a tag learnt from the upstream is trusted before
	// it is revalidated.
	TagTTL time.Duration
	// ServeStale serves the last known digest of a tag when the upstream
	// is unreachable, rate limiting or failing.
	ServeStale bool
	// FillIdleTimeout fails a fill that receives nothing for this long.
	FillIdleTimeout time.Duration
	// ServeStaleOn404 also serves a tag's last known digest when the
	// upstream answers 404 for it.
	ServeStaleOn404 bool
	// HeadTimeout bounds a HEAD to the upstream (revalidation, access
	// confirmation); RequestTimeout a manifest GET or a tag list.
	HeadTimeout, RequestTimeout time.Duration
	// ReferrersTTL is how long an answer of the upstream's referrers API
	// is served before it is fetched again (0: the tag TTL).
	ReferrersTTL time.Duration
	// RateLimitFloor: below this many remaining pulls (the upstream's
	// ratelimit-remaining), tags are served without revalidation until the
	// window passes. 0 never skips.
	RateLimitFloor int
	// Private marks a namespace whose upstream is reached with
	// credentials: a repository is served a digest only once the upstream
	// served or confirmed it for that repository.
	Private bool
	// ForHost makes this a wildcard namespace: Name is a route.Pattern
	// and Origin is nil; each host of that shape a request names is a
	// namespace of its own, with these settings and the upstream ForHost
	// builds for it. At most MaxHosts hosts are live at once (least
	// recently used dropped: their upstream, not their content).
	ForHost  func(host string) (Origin, error)
	MaxHosts int
	// Shape is, in a host of a wildcard namespace, the wildcard's name:
	// what metrics label it with. "" elsewhere.
	Shape string

	breaker *breaker.Breaker // a wildcard host's upstream breaker
}

// label is the namespace's name in metrics: a wildcard host's is its
// wildcard's, so labels stay bounded.
func (ns *Namespace) label() string {
	if ns.Shape != "" {
		return ns.Shape
	}
	return ns.Name
}

// Cache resolves content for the registry. Safe for concurrent use.
type Cache struct {
	store *storage.Store
	// nss are the namespaces as New got them: their names and Private
	// never change. Every other setting is read through namespace(),
	// from live, which UpdateNamespaces swaps (settings.go).
	nss       map[string]*Namespace
	live      atomic.Pointer[map[string]*Namespace]
	hosts     *wildcards                       // the live hosts of wildcard namespaces
	manifests *lru.Cache[string, oci.Manifest] // small manifests by digest
	referrers *referrersCache
	now       func() time.Time
	log       *slog.Logger
	metrics   *metrics
	reg       prometheus.Registerer
	fillBound time.Duration // one upstream request of a fill; 0: none
	bufs      *copyBuffers  // for serving files

	mu       sync.Mutex
	inflight map[string]*fill // by digest: one fill per digest, process-wide
	closed   bool             // Close has begun: no fill starts (under mu)
	root     context.Context  // fills run under it: detached from requests, ended by Close
	stop     context.CancelFunc
	fills    sync.WaitGroup

	evictMu      sync.Mutex // one eviction at a time
	useMu        sync.Mutex
	inUse        map[string]int // blobs being read, by digest (under useMu)
	limit        Limit
	pins         []route.PinRule
	pinPlatforms []string
	pressure     chan struct{} // wakes Run after a commit
	evictShort   atomic.Bool   // the last eviction left usage over the high mark

	stats        counters                    // for Stats
	flights      singleflight.Group          // coalesced manifest fetches, HEADs, confirmations
	breakers     map[string]*breaker.Breaker // by namespace: their upstreams'
	peerMu       sync.Mutex
	peerBreakers map[string]*breaker.Breaker // by node name, made on first use
	owners       Owners

	platformSpec    string        // WithDefaultPlatform's argument
	defaultPlatform v1.Platform   // parsed by New
	breakAt         int           // failures that open a breaker
	cooldown        time.Duration // how long it stays open

	uploadExpiry time.Duration // idle upload sessions end after it
	uploads      UploadLimits  // size and session caps of pushes
}

// Option configures a Cache.
type Option func(*Cache)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(c *Cache) { c.log = l } }

// WithClock injects the clock used for tag TTLs (tests).
func WithClock(now func() time.Time) Option { return func(c *Cache) { c.now = now } }

// WithRegisterer registers the cache's metrics (default: none).
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(c *Cache) { c.reg = reg }
}

// WithBreaker sets the circuit breaker of every namespace: it opens after
// failures upstream outages in a row, for cooldown (default 5, 30s).
func WithBreaker(failures int, cooldown time.Duration) Option {
	return func(c *Cache) { c.breakAt, c.cooldown = failures, cooldown }
}

// WithFillBound caps how long one upstream request of a fill may take
// (cache.fill_max_duration; default 0, no cap: the idle timeout ends a
// stalled fill). A fill cut by it resumes with Range where it stopped; see
// pump for how many resumes it gets.
func WithFillBound(d time.Duration) Option { return func(c *Cache) { c.fillBound = d } }

// manifestLRUSize is how many small manifests stay in memory; with
// maxLRUManifest that is at most 64 MiB, and typically a few MiB.
//
// copyBuffer is the size of the pooled buffers that fills' readers and
// short ranges copy through; long warm reads borrow bigger ones
// (copybuf.go).
const (
	copyBuffer      = 128 << 10
	manifestLRUSize = 1024
	maxLRUManifest  = 64 << 10
)

// New returns a cache over store for the given namespaces.
func New(store *storage.Store, nss []Namespace, opts ...Option) (*Cache, error) {
	if store == nil {
		return nil, errors.New("cache: nil store")
	}
	c := &Cache{
		store:        store,
		nss:          make(map[string]*Namespace, len(nss)),
		now:          time.Now,
		log:          slog.New(slog.DiscardHandler),
		inflight:     make(map[string]*fill),
		inUse:        make(map[string]int),
		pressure:     make(chan struct{}, 1),
		breakers:     make(map[string]*breaker.Breaker),
		owners:       alone{},
		platformSpec: DefaultPlatform,
		peerBreakers: make(map[string]*breaker.Breaker),
		breakAt:      5,
		cooldown:     30 * time.Second,

		uploadExpiry: DefaultUploadExpiry,
		bufs:         newCopyBuffers(),
	}
	for i := range nss {
		ns := nss[i]
		if ns.Name == "" || ns.TagTTL <= 0 || ns.FillIdleTimeout <= 0 {
			return nil, fmt.Errorf("cache: namespace %q: name, tag TTL and fill idle timeout are required", ns.Name)
		}
		c.nss[ns.Name] = &ns
	}
	live := maps.Clone(c.nss)
	c.live.Store(&live)
	c.manifests, _ = lru.New[string, oci.Manifest](manifestLRUSize) // errors only for size <= 0
	c.referrers = newReferrersCache()
	for _, o := range opts {
		o(c)
	}
	p, err := parsePlatform(c.platformSpec)
	if err != nil {
		return nil, err
	}
	c.defaultPlatform = p
	if c.owners == nil {
		return nil, errors.New("cache: nil owners")
	}
	if c.fillBound < 0 {
		return nil, fmt.Errorf("cache: fill bound %v, want >= 0", c.fillBound)
	}
	if c.uploadExpiry <= 0 {
		return nil, fmt.Errorf("cache: upload expiry %v, want > 0", c.uploadExpiry)
	}
	if u := c.uploads; u.MaxSize < 0 || u.Sessions < 0 || u.SessionsPerUser < 0 {
		return nil, fmt.Errorf("cache: upload limits %+v, want >= 0", u)
	}
	for name := range c.nss {
		c.breakers[name] = breaker.New(c.breakAt, c.cooldown)
	}
	hosts, err := newWildcards(c.nss, func() *breaker.Breaker { return breaker.New(c.breakAt, c.cooldown) })
	if err != nil {
		return nil, err
	}
	c.hosts = hosts
	c.root, c.stop = context.WithCancel(context.Background())
	m, err := newMetrics(c.reg, store, c.limit.Max)
	if err != nil {
		return nil, fmt.Errorf("cache: metrics: %w", err)
	}
	c.metrics = m
	return c, nil
}

// ErrClosed answers a request that would start a fill after Close.
var ErrClosed = errors.New("cache: closed (the node is shutting down)")

// Close stops the fills still running (their temp files are removed) and
// waits for them, so the store can be closed after it. No fill starts
// once it has begun: a request that would need one fails with ErrClosed
// (UNAVAILABLE). Safe to call more than once.
func (c *Cache) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.stop()
	c.fills.Wait()
}

func (c *Cache) namespace(name string) (*Namespace, error) {
	if ns, ok := (*c.live.Load())[name]; ok {
		return ns, nil
	}
	if ns, err := c.hosts.namespace(name); ns != nil || err != nil {
		return ns, err
	}
	return nil, fmt.Errorf("cache: namespace %q is not configured", name)
}

// private reports whether the namespace named name uses credentials.
func (c *Cache) private(name string) bool {
	ns, err := c.namespace(name)
	return err == nil && ns.Private
}
