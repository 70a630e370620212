package config

import "time"

// The defaults ApplyDefaults fills in, each with the reason for its value.
const (
	// Version is the only config file version this build reads. It has no
	// default: a file must say which contract it was written against.
	Version = 1

	// DefaultListen serves the OCI Distribution API on every interface, on
	// the port registries conventionally use.
	DefaultListen = ":5000"

	// DefaultAdminListen keeps /metrics, /healthz, /readyz and /debug/pprof
	// on loopback: pprof and the admin calls must not face the network
	// unless an operator says so. Unlike the other fields, an explicit
	// `admin_listen: ""` is kept and disables the admin listener, so this
	// default is applied by Load to a missing key, not by ApplyDefaults.
	DefaultAdminListen = "127.0.0.1:9090"

	// DefaultDataDir is relative to the working directory, so that
	// `cairn serve` with no config works anywhere without root.
	DefaultDataDir = "./data"

	// DefaultSite is the site of a single-site deployment. It is written to
	// node.json at first start and never changes afterwards.
	DefaultSite = "default"

	// DefaultLogLevel logs one line per request and lifecycle events.
	DefaultLogLevel = "info"

	// DefaultLogFormat is for humans; use json for log shippers.
	DefaultLogFormat = "text"

	// DefaultTagTTL trusts a tag for five minutes before a revalidating HEAD:
	// fresh enough for CI pushing :latest, and HEADs are not counted by
	// Docker Hub's pull rate limit.
	DefaultTagTTL = 5 * time.Minute

	// DefaultReferrersTTL: a referrers answer (signatures, SBOMs attached
	// to a digest) is fetched again after 30 seconds, so a new signature
	// shows through cairn within that; the API has no HEAD to ask cheaply.
	DefaultReferrersTTL = 30 * time.Second

	// DefaultServeStale serves the last known digest of a tag while upstream
	// is down: a stale tag beats a failed rollout.
	DefaultServeStale = true

	// DefaultFillIdleTimeout fails a fill that has received nothing for two
	// minutes, long enough for a slow registry's first byte, short enough
	// that a stuck connection does not hold waiting clients forever.
	DefaultFillIdleTimeout = 2 * time.Minute

	// DefaultHeadTimeout: a HEAD to a healthy registry takes well under a
	// second; three seconds tells a dead one from a slow one without making
	// clients of cached tags wait long.
	DefaultHeadTimeout = 3 * time.Second

	// DefaultUploadExpire: an upload session idle for a day is abandoned
	// (distribution's default too).
	DefaultUploadExpire = 24 * time.Hour

	// DefaultUploadMaxSize caps one pushed blob: larger than the layers of
	// most images (ML images with multi-GB layers included), small enough
	// that one client cannot fill the disk with a single upload.
	DefaultUploadMaxSize = 32 << 30

	// DefaultUploadMaxSessions and DefaultUploadMaxSessionsPerUser bound the
	// open upload sessions: a CI fleet pushes a few layers at a time each.
	DefaultUploadMaxSessions        = 1024
	DefaultUploadMaxSessionsPerUser = 64

	// DefaultMaxConnections caps the API listener's connections: well
	// above a node's clients' pools, well below its file descriptors.
	DefaultMaxConnections = 4096

	// DefaultMaxHeaderBytes: registry requests carry a few headers and one
	// token; 64 KiB holds the largest tokens with room to spare.
	DefaultMaxHeaderBytes = 64 << 10

	// DefaultMinSendRate and DefaultMinSendWindow: a client reading a body
	// slower than 16 KiB/s (128 kbit/s) over a minute is gone or hostile;
	// it must not hold a buffer and an eviction guard for long. A client
	// that stops reading is cut at most a window plus one 2 MiB write at
	// the rate (about three minutes) after its last progress.
	DefaultMinSendRate   = 16 << 10
	DefaultMinSendWindow = time.Minute

	// DefaultRequestTimeout bounds a manifest GET or tag list (small bodies).
	DefaultRequestTimeout = 15 * time.Second

	// DefaultBreakerFailures opens the circuit after five failures in a row:
	// one flaky answer does not cut the upstream off, a dead one soon is.
	DefaultBreakerFailures = 5

	// DefaultBreakerCooldown: how long an open circuit answers from the
	// cache before one request probes the upstream again.
	DefaultBreakerCooldown = 30 * time.Second

	// DefaultPlatform is what distribution gives clients that take no
	// index: the linux/amd64 child.
	DefaultPlatform = "linux/amd64"

	// DefaultChangeLogRetention keeps a week of the store's change log:
	// a replication target down over a long weekend catches up from the
	// log instead of a full rescan; at a few hundred bytes an entry, a
	// busy node's week is tens of MiB of metadata.
	DefaultChangeLogRetention = 7 * 24 * time.Hour

	// DefaultEvictHigh and DefaultEvictLow: eviction starts at 90% of
	// max_size and frees down to 80%, so it runs in batches, not per fill.
	DefaultEvictHigh = 0.90
	DefaultEvictLow  = 0.80

	// DefaultAnonymous is what a client without credentials may do when
	// auth.anonymous is absent: pull, as from the public registries cairn
	// mirrors. Pushing, deleting and replicating need a user.
	DefaultAnonymous = "pull"

	// dockerHub is the one namespace whose library_prefix defaults to true:
	// Docker Hub serves official images under library/.
	dockerHub = "docker.io"
)

// ApplyDefaults fills every zero field with its default (see the Default*
// constants), then fills each upstream's unset library_prefix (true for
// docker.io only), tag_ttl, serve_stale and fill_idle_timeout (from the cache
// section), so consumers read them from the Upstream directly. A nil
// auth.anonymous becomes [DefaultAnonymous]; an empty one (`anonymous: []`)
// stays empty and means nothing. It leaves Version and AdminListen alone: a
// missing version is a problem, and an empty admin_listen means disabled.
func (c *Config) ApplyDefaults() {
	setString(&c.Listen, DefaultListen)
	setString(&c.DataDir, DefaultDataDir)
	setString(&c.Site, DefaultSite)
	setString(&c.Log.Level, DefaultLogLevel)
	setString(&c.Log.Format, DefaultLogFormat)
	if c.Cache.TagTTL == 0 {
		c.Cache.TagTTL = Duration(DefaultTagTTL)
	}
	if c.Cache.ServeStale == nil {
		c.Cache.ServeStale = ptr(DefaultServeStale)
	}
	if c.Cache.FillIdleTimeout == 0 {
		c.Cache.FillIdleTimeout = Duration(DefaultFillIdleTimeout)
	}
	if c.Cache.ServeStaleOn404 == nil {
		c.Cache.ServeStaleOn404 = ptr(false) // a 404 usually means the tag is gone
	}
	setDuration(&c.Cache.HeadTimeout, DefaultHeadTimeout)
	setDuration(&c.Uploads.Expire, DefaultUploadExpire)
	if c.Uploads.MaxSize == 0 {
		c.Uploads.MaxSize = DefaultUploadMaxSize
	}
	setInt(&c.Uploads.MaxSessions, DefaultUploadMaxSessions)
	if c.Uploads.MaxSessionsPerUser == 0 && c.Uploads.MaxSessions > 0 {
		// a node capped below the per-user default caps each user alike
		c.Uploads.MaxSessionsPerUser = min(DefaultUploadMaxSessionsPerUser, c.Uploads.MaxSessions)
	}
	setInt(&c.Limits.MaxConnections, DefaultMaxConnections)
	if c.Limits.MaxHeaderBytes == 0 {
		c.Limits.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.Limits.MinSendRate == nil {
		c.Limits.MinSendRate = ptr(ByteSize(DefaultMinSendRate))
	}
	setDuration(&c.Limits.MinSendWindow, DefaultMinSendWindow)
	c.Auth.Token.ApplyDefaults() // nil-safe: no auth.token, nothing to do
	if c.TLS.CertFile != "" {
		setString(&c.TLS.MinVersion, DefaultTLSMinVersion)
	}
	setDuration(&c.Cache.RequestTimeout, DefaultRequestTimeout)
	setDuration(&c.Cache.ReferrersTTL, DefaultReferrersTTL)
	setDuration(&c.Cache.BreakerCooldown, DefaultBreakerCooldown)
	setDuration(&c.Cache.ChangeLogRetention, DefaultChangeLogRetention)
	if c.Cache.DefaultPlatform == "" {
		c.Cache.DefaultPlatform = DefaultPlatform
	}
	if c.Cache.EvictHigh == 0 {
		c.Cache.EvictHigh = DefaultEvictHigh
	}
	if c.Cache.EvictLow == 0 {
		c.Cache.EvictLow = DefaultEvictLow
	}
	if c.Cache.BreakerFailures == 0 {
		c.Cache.BreakerFailures = DefaultBreakerFailures
	}
	if c.Auth.Anonymous == nil {
		c.Auth.Anonymous = []string{DefaultAnonymous}
	}
	if len(c.Cache.Pin) == 0 {
		c.Cache.Pin = nil // `pin: []` and no key mean the same
	}
	if len(c.Cache.PinPlatforms) == 0 {
		c.Cache.PinPlatforms = nil
	}
	if len(c.Auth.Access) == 0 {
		c.Auth.Access = nil // `access: []` and no key mean the same
	}
	for i := range c.Upstreams {
		u := &c.Upstreams[i]
		if u.LibraryPrefix == nil {
			u.LibraryPrefix = ptr(u.Name == dockerHub)
		}
		if u.TagTTL == nil {
			u.TagTTL = ptr(c.Cache.TagTTL)
		}
		if u.ServeStale == nil {
			u.ServeStale = ptr(*c.Cache.ServeStale)
		}
		if u.FillIdleTimeout == nil {
			u.FillIdleTimeout = ptr(c.Cache.FillIdleTimeout)
		}
		if u.ServeStaleOn404 == nil {
			u.ServeStaleOn404 = ptr(*c.Cache.ServeStaleOn404)
		}
		if u.HeadTimeout == nil {
			u.HeadTimeout = ptr(c.Cache.HeadTimeout)
		}
		if u.RequestTimeout == nil {
			u.RequestTimeout = ptr(c.Cache.RequestTimeout)
		}
		if u.ReferrersTTL == nil {
			u.ReferrersTTL = ptr(c.Cache.ReferrersTTL)
		}
		if len(u.Aliases) == 0 {
			u.Aliases = nil // `aliases: []` and no key mean the same
		}
		if u.Wildcard() {
			setInt(&u.MaxHosts, DefaultMaxHosts)
		}
	}
}

func setString(s *string, def string) {
	if *s == "" {
		*s = def
	}
}

func setInt(n *int, def int) {
	if *n == 0 {
		*n = def
	}
}

func ptr[T any](v T) *T { return &v }

func setDuration(d *Duration, def time.Duration) {
	if *d == 0 {
		*d = Duration(def)
	}
}
