package config

import (
	"bytes"
	_ "embed"
	"fmt"
	"io"
	"slices"
)

// Config is cairn's configuration file, version 1.
type Config struct {
	Version     int        `yaml:"version"`
	Listen      string     `yaml:"listen"`
	AdminListen string     `yaml:"admin_listen"`
	DataDir     string     `yaml:"data_dir"`
	Site        string     `yaml:"site"`
	Log         Log        `yaml:"log"`
	Cache       Cache      `yaml:"cache"`
	Admin       Admin      `yaml:"admin,omitempty"`
	Auth        Auth       `yaml:"auth"`
	TLS         TLS        `yaml:"tls,omitempty"` // tls.go; absent: plain HTTP
	Uploads     Uploads    `yaml:"uploads"`
	Limits      Limits     `yaml:"limits"`
	Upstreams   []Upstream `yaml:"upstreams"`
}

// Limits bounds what clients can make the API listener hold.
type Limits struct {
	// MaxConnections caps the API listener's open connections; a
	// connection past it waits in the kernel's accept queue until one
	// closes. Default DefaultMaxConnections.
	MaxConnections int `yaml:"max_connections"`
	// MaxHeaderBytes caps a request's header block. Default
	// DefaultMaxHeaderBytes.
	MaxHeaderBytes ByteSize `yaml:"max_header_bytes"`
	// MinSendRate closes a connection whose client falls more than
	// MinSendWindow behind this many bytes a second while reading a
	// response body. Default DefaultMinSendRate; 0 keeps no floor.
	MinSendRate *ByteSize `yaml:"min_send_rate"`
	// MinSendWindow is the time MinSendRate is measured over. Default
	// DefaultMinSendWindow.
	MinSendWindow Duration `yaml:"min_send_window"`
}

// Uploads configures blob upload sessions (pushes).
type Uploads struct {
	// Expire ends an upload session that received nothing for this long,
	// with its temp file. Default DefaultUploadExpire.
	Expire Duration `yaml:"expire"`
	// MaxSize caps one blob upload (monolithic or the sum of its chunks);
	// past it the upload is refused (413 SIZE_INVALID) and its session
	// ends. Default DefaultUploadMaxSize.
	MaxSize ByteSize `yaml:"max_size"`
	// MaxSessions caps the open upload sessions of the node, and
	// MaxSessionsPerUser those of one user (anonymous clients cannot
	// push). Past either a new upload is refused (429 TOOMANYREQUESTS).
	// Defaults DefaultUploadMaxSessions, DefaultUploadMaxSessionsPerUser.
	MaxSessions        int `yaml:"max_sessions"`
	MaxSessionsPerUser int `yaml:"max_sessions_per_user"`
}

// Auth says who may do what through the OCI Distribution API. Without the
// section, every client is anonymous and may only pull.
//
// Actions are pull, push, delete and replicate. A write into a hosted
// namespace needs push; a write into a mirror namespace needs replicate.
type Auth struct {
	// HtpasswdFile lists the users, one bcrypt entry a line (htpasswd -B).
	// Like password_file it is a path: Validate checks that it exists, the
	// auth package reads it. Unset: no client can log in.
	HtpasswdFile string `yaml:"htpasswd_file,omitempty"`
	// Anonymous lists what a client without credentials may do; an
	// authenticated user may do it too. Absent or null: DefaultAnonymous
	// ([pull]). [] allows nothing without credentials. After ApplyDefaults
	// it is never nil.
	Anonymous []string `yaml:"anonymous"`
	// Access grants actions on repositories to users. It needs
	// htpasswd_file.
	Access []AccessRule `yaml:"access,omitempty"`
	// Token enables Docker token auth (token.go). Absent: Basic only.
	Token *Token `yaml:"token,omitempty"`
	// TrustedProxies are the CIDRs of reverse proxies whose
	// X-Forwarded-For header names the client (for the failed-login
	// limits). Nobody else's header is believed.
	TrustedProxies []string `yaml:"trusted_proxies,omitempty"`
}

// AccessRule grants Actions on the repositories matching Repositories to
// Users. Repositories are globs on canonical names (<namespace>/<repo>):
// '*' matches within one path component, a "**" component any number of
// components, none included, as in cache.pin ("registry.internal/myteam/**"
// covers registry.internal/myteam and all below it); unlike a pin, a
// leading "**" spans components too ("**" alone is every repository). A
// glob whose first component has no '*' must name a configured namespace.
// The user "*" is any authenticated user; the user "anonymous" is every
// client, with or without credentials (it may only be granted pull).
type AccessRule struct {
	Users        []string `yaml:"users"`
	Repositories []string `yaml:"repositories"`
	Actions      []string `yaml:"actions"`
}

// Admin configures the admin API served on admin_listen.
type Admin struct {
	// TokenFile holds the bearer token the mutating and expensive admin
	// calls (cache verify, cache rm) require. Unset: those calls are
	// refused. Like password_file it is a path; cmd/cairn reads it.
	TokenFile string `yaml:"token_file,omitempty"`
}

// Log configures the process logger.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
}

// Cache holds the cache settings every namespace inherits unless its
// Upstream entry overrides them.
type Cache struct {
	// TagTTL is how long a tag record from upstream is trusted before it is
	// revalidated with a HEAD.
	TagTTL Duration `yaml:"tag_ttl"`
	// ServeStale serves the last known digest of a tag while upstream is
	// down, slow, 429 or 5xx.
	ServeStale *bool `yaml:"serve_stale"`
	// FillIdleTimeout fails a fill that receives nothing for this long.
	FillIdleTimeout Duration `yaml:"fill_idle_timeout"`
	// FillMaxDuration bounds one upstream request of a fill; a fill cut by
	// it resumes with Range where it stopped. 0 (the default): no bound,
	// the idle timeout ends a stalled fill.
	FillMaxDuration Duration `yaml:"fill_max_duration,omitempty"`
	// ServeStaleOn404 also serves the last known digest of a tag the
	// upstream answers 404 for (a tag deleted upstream keeps working).
	ServeStaleOn404 *bool `yaml:"serve_stale_on_404"`
	// HeadTimeout bounds a revalidating HEAD: a dead upstream costs a
	// client of a cached tag no more than this.
	HeadTimeout Duration `yaml:"head_timeout"`
	// RequestTimeout bounds a manifest GET or a tag list from the upstream.
	RequestTimeout Duration `yaml:"request_timeout"`
	// ReferrersTTL is how long an answer of the upstream's referrers API
	// is kept before it is fetched again (the API has no HEAD to
	// revalidate with); past it, it is served stale under serve_stale.
	ReferrersTTL Duration `yaml:"referrers_ttl"`
	// BreakerFailures consecutive upstream failures open a namespace's
	// circuit breaker: for BreakerCooldown cairn answers from its cache
	// (or with 503) without asking the upstream, then lets one request try.
	BreakerFailures int      `yaml:"breaker_failures"`
	BreakerCooldown Duration `yaml:"breaker_cooldown"`
	// MaxSize caps the blobs kept on disk (0: no cap). Past EvictHigh of
	// it, least-recently-used blobs are evicted until EvictLow of it.
	MaxSize   ByteSize `yaml:"max_size,omitempty"`
	EvictHigh float64  `yaml:"evict_high"`
	EvictLow  float64  `yaml:"evict_low"`
	// Pin keeps content from eviction: exact references
	// ("docker.io/library/alpine:3.19") are fetched ahead, all platforms,
	// and kept whole; repository globs ("ghcr.io/org/**") keep whatever
	// is cached under them. Names are canonical: <namespace>/<repo>.
	Pin []string `yaml:"pin,omitempty"`
	// PinPlatforms limits what an exact pin fetches ahead from a
	// multi-platform index ("linux/amd64", "linux/arm64/v8"); empty: all.
	PinPlatforms []string `yaml:"pin_platforms,omitempty"`
	// DefaultPlatform ("os/arch[/variant]") is the child of an index a
	// client that accepts no index type gets for a tag naming that index.
	DefaultPlatform string `yaml:"default_platform"`
	// ChangeLogRetention is how long the store keeps its change log's
	// entries (what push replication and events follow); a consumer
	// stopped for longer rescans.
	ChangeLogRetention Duration `yaml:"change_log_retention"`
}

// Upstream is one namespace: a mirror of the registry at URL, or, without a
// URL, a hosted namespace (a private registry, or an air-gapped copy).
//
// After ApplyDefaults, LibraryPrefix and the per-namespace overrides of the
// cache section are never nil: consumers read them directly.
type Upstream struct {
	// Name is the registry host the namespace stands for (docker.io, ghcr.io,
	// localhost:5000).
	Name string `yaml:"name"`
	// URL is the registry's API endpoint; empty for a hosted namespace.
	URL string `yaml:"url,omitempty"`
	// Aliases are other host names that select this namespace.
	Aliases []string `yaml:"aliases,omitempty"`
	// LibraryPrefix puts "library/" in front of one-component repository names.
	LibraryPrefix *bool `yaml:"library_prefix"`
	// Default makes this the namespace of requests that name none.
	Default bool `yaml:"default"`
	// Username and PasswordFile log in to URL; the upstream client reads the
	// file. Keychain uses the docker credential keychain instead.
	Username     string `yaml:"username,omitempty"`
	PasswordFile string `yaml:"password_file,omitempty"`
	Keychain     bool   `yaml:"keychain,omitempty"`
	// AnonymousPullsUseCredentials states that anonymous clients may pull
	// through this namespace's credentials: a deliberate shared-account
	// mirror. Without it, a config that lets anonymous clients pull from a
	// namespace with credentials is refused.
	AnonymousPullsUseCredentials bool `yaml:"anonymous_pulls_use_credentials,omitempty"`
	// Endpoints are the upstream's addresses, tried in order (url is the
	// short form of one). Each endpoint leaves empty what the namespace's
	// fields below give it.
	Endpoints []Endpoint `yaml:"endpoints,omitempty"`
	// Credentials log in to the endpoints (username and password_file,
	// or keychain, are its short form); an endpoint may have its own.
	Credentials *Credentials `yaml:"credentials,omitempty"`
	// RepositoryPrefix, TLS, Proxy, MaxConnections and
	// MaxRequestsPerSecond are the endpoints' defaults (see Endpoint).
	RepositoryPrefix     string       `yaml:"repository_prefix,omitempty"`
	TLS                  *UpstreamTLS `yaml:"tls,omitempty"`
	Proxy                string       `yaml:"proxy,omitempty" secret:"userinfo"`
	MaxConnections       int          `yaml:"max_connections,omitempty"`
	MaxRequestsPerSecond float64      `yaml:"max_requests_per_second,omitempty"`
	// MaxHosts bounds the hosts of a wildcard namespace live at once
	// (each with its upstream client); the least recently used is
	// dropped. Default 64.
	MaxHosts int `yaml:"max_hosts,omitempty"`
	// Per-namespace overrides of the cache section.
	TagTTL          *Duration `yaml:"tag_ttl"`
	ServeStale      *bool     `yaml:"serve_stale"`
	FillIdleTimeout *Duration `yaml:"fill_idle_timeout"`
	ServeStaleOn404 *bool     `yaml:"serve_stale_on_404"`
	HeadTimeout     *Duration `yaml:"head_timeout"`
	RequestTimeout  *Duration `yaml:"request_timeout"`
	ReferrersTTL    *Duration `yaml:"referrers_ttl"`
	// RateLimitFloor: when the upstream's ratelimit-remaining header falls
	// below this, tags are served from the cache without revalidation until
	// the rate-limit window has passed. 0 never skips.
	RateLimitFloor int `yaml:"ratelimit_floor,omitempty"`
	// Delete enables the OCI API's deletes in this namespace. Default:
	// none (each answers 405 UNSUPPORTED). A client also needs the delete
	// action (auth.access), and in a mirror namespace replicate too.
	Delete Delete `yaml:"delete,omitempty"`
}

// Delete says which DELETE endpoints a namespace serves. Each is off
// unless set to true.
type Delete struct {
	// Tags: DELETE /v2/<name>/manifests/<tag> removes the tag; the
	// manifest stays, reachable by digest.
	Tags bool `yaml:"tags,omitempty"`
	// Manifests: DELETE /v2/<name>/manifests/<digest> removes the manifest
	// from the repository, with the repository's tags pointing at it.
	Manifests bool `yaml:"manifests,omitempty"`
	// Blobs: DELETE /v2/<name>/blobs/<digest> removes the blob from the
	// repository. Bytes are removed from disk once no repository holds
	// them and nothing pins them.
	Blobs bool `yaml:"blobs,omitempty"`
}

// Any reports whether some delete is enabled.
func (d Delete) Any() bool { return d.Tags || d.Manifests || d.Blobs }

// Credentialed reports whether the namespace logs in to its upstream, at
// any of its endpoints.
func (u Upstream) Credentialed() bool {
	if u.namespaceCredentials().Set() {
		return true
	}
	return slices.ContainsFunc(u.EffectiveEndpoints(), func(e Endpoint) bool { return e.Credentials.Set() })
}

// credentialKind names how the namespace logs in, for messages.
func (u Upstream) credentialKind() string {
	c := u.namespaceCredentials()
	if !c.Set() {
		for _, e := range u.EffectiveEndpoints() {
			if e.Credentials.Set() {
				c = e.Credentials
				break
			}
		}
	}
	switch {
	case c == nil:
		return "no credentials"
	case c.Keychain:
		return "keychain: true"
	case c.Basic != nil:
		return "username " + c.Basic.Username
	}
	return "credentials"
}

// Mirror reports whether the namespace mirrors an upstream registry (it has
// a URL or endpoints) rather than being hosted here.
func (u Upstream) Mirror() bool { return u.URL != "" || len(u.Endpoints) > 0 }

// maxSize bounds the config file Load reads.
const maxSize = 1 << 20

// Load reads one YAML document from r, decodes it strictly (unknown keys are
// problems), applies the defaults and validates the result. Every problem
// found is returned in one *ValidationError; an error reading r is returned
// wrapped.
func Load(r io.Reader) (*Config, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: read: %w", err)
	}
	if len(data) > maxSize {
		return nil, &ValidationError{Problems: []string{
			fmt.Sprintf("%s: the file is larger than %d bytes", topLevel, maxSize)}}
	}
	d := decode(data)
	if d.cfg == nil {
		return nil, &ValidationError{Problems: d.problems}
	}
	d.cfg.ApplyDefaults()
	problems := d.problems
	if !d.structural {
		problems = append(problems, d.annotate(d.cfg.Validate())...)
	}
	if len(problems) > 0 {
		return nil, &ValidationError{Problems: problems}
	}
	return d.cfg, nil
}

//go:embed default.yaml
var defaultYAML []byte

// Default returns a fresh copy of the embedded default configuration
// (default.yaml): the public registries mirrored into ./data, docker.io the
// default namespace.
func Default() *Config {
	c, err := Load(bytes.NewReader(defaultYAML))
	if err != nil {
		// Unreachable: TestDefault loads the same embedded bytes. Like
		// regexp.MustCompile on a literal, a broken build asset is a
		// programming error, not a runtime condition.
		panic("config: embedded default.yaml is invalid: " + err.Error())
	}
	return c
}
