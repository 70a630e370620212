package upstream

import (
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Option configures a Client.
type Option func(*options)

type options struct {
	auth      authn.Authenticator // static credentials; nil when unset
	keychain  authn.Keychain      // resolved by namespace at transport build
	base      http.RoundTripper
	retries   int
	backoff   time.Duration // first retry delay, doubled each retry
	logger    *slog.Logger
	metrics   *Metrics
	userAgent string
	now       func() time.Time
}

// Defaults: anonymous, two retries starting at 100ms, a discard logger, no
// metrics, and a clone of http.DefaultTransport with bounded timeouts.
func defaultOptions() options {
	return options{
		now:     time.Now,
		retries: 2,
		backoff: 100 * time.Millisecond,
		logger:  slog.New(slog.DiscardHandler),
	}
}

// WithBasic sets static credentials for the upstream (basic auth, or the
// credentials exchanged for a bearer token).
func WithBasic(username, password string) Option {
	return func(o *options) {
		o.auth = authn.FromConfig(authn.AuthConfig{Username: username, Password: password})
	}
}

// WithKeychain resolves credentials from kc by the namespace name (for
// example "docker.io"), not by the upstream URL's host: the docker keychain
// knows Docker Hub only as index.docker.io, which name.NewRegistry("docker.io")
// yields. The keychain is asked on every transport build.
func WithKeychain(kc authn.Keychain) Option {
	return func(o *options) { o.keychain = kc }
}

// WithTransport sets the base transport under go-containerregistry's.
func WithTransport(rt http.RoundTripper) Option {
	return func(o *options) { o.base = rt }
}

// WithRetries sets how many times an idempotent request is retried after a
// connection error or a 500/502/503/504 answer. 0 disables retries.
func WithRetries(n int) Option {
	return func(o *options) { o.retries = n }
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// WithMetrics records requests on m (shared by all clients).
func WithMetrics(m *Metrics) Option {
	return func(o *options) { o.metrics = m }
}

// WithUserAgent sets the User-Agent prefix (ggcr appends its own version).
func WithUserAgent(ua string) Option {
	return func(o *options) { o.userAgent = ua }
}

// withBackoff sets the first retry delay (tests shorten it).
func withBackoff(d time.Duration) Option {
	return func(o *options) { o.backoff = d }
}

// defaultTransport is http.DefaultTransport with bounded dial, TLS and
// response-header timeouts, so a hung upstream fails instead of hanging.
func defaultTransport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ResponseHeaderTimeout = 30 * time.Second
	t.IdleConnTimeout = 90 * time.Second
	t.MaxIdleConns = 100
	t.MaxIdleConnsPerHost = 32
	return t
}

// WithClock sets the clock that stamps rate-limit readings (tests that
// inject the cache's clock inject the same one here).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }
