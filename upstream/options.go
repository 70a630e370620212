package upstream

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
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

	repoPrefix string
	endpoint   string // metrics and logs name of the endpoint
	metricsNS  string // the namespace label (a wildcard's name for its hosts)
	tls        TLS
	proxy      *url.URL // nil: from the environment
	maxConns   int      // 0: unlimited
	rps        float64  // 0: unlimited
	maxWait    time.Duration
}

// Defaults: anonymous, two retries starting at 100ms, a discard logger, no
// metrics, and a clone of http.DefaultTransport with bounded timeouts.
func defaultOptions() options {
	return options{
		now:     time.Now,
		retries: 2,
		backoff: 100 * time.Millisecond,
		logger:  slog.New(slog.DiscardHandler),
		maxWait: DefaultMaxWait,
	}
}

// DefaultMaxWait bounds how long a request waits for a free connection
// slot or its turn under the rate (WithLimits) before it fails with
// UNAVAILABLE and a Retry-After.
const DefaultMaxWait = 10 * time.Second

// WithRepositoryPrefix puts prefix ("dockerhub-proxy/", ending in /) in
// front of every repository name sent to the endpoint: a Harbor proxy
// project serves library/alpine as dockerhub-proxy/library/alpine.
func WithRepositoryPrefix(prefix string) Option {
	return func(o *options) { o.repoPrefix = prefix }
}

// WithEndpointName names the endpoint in metrics and logs (default: its
// host and path). A wildcard namespace's hosts share their template's
// name, so labels stay bounded.
func WithEndpointName(name string) Option {
	return func(o *options) { o.endpoint = name }
}

// WithMetricsNamespace sets the namespace label of the client's metrics
// (default: its namespace). A wildcard namespace's hosts use the
// wildcard's name.
func WithMetricsNamespace(ns string) Option {
	return func(o *options) { o.metricsNS = ns }
}

// TLS is how the endpoint's certificate is checked and which client
// certificate is presented (PEM files). CAFile is added to the system
// roots unless SystemRoots is false.
type TLS struct {
	CAFile, CertFile, KeyFile string
	SystemRoots               bool
}

// WithTLS sets the endpoint's TLS settings; New reads the files.
func WithTLS(t TLS) Option { return func(o *options) { o.tls = t } }

// WithProxy sends requests through the proxy at u (http, https or
// socks5), loopback hosts included. Without it, HTTPS_PROXY, HTTP_PROXY
// and NO_PROXY decide, as for any Go program.
func WithProxy(u *url.URL) Option { return func(o *options) { o.proxy = u } }

// WithLimits caps the requests in flight to the endpoint at maxConns (a
// body holds its slot until closed) and paces them at rps per second; 0
// leaves either unlimited. A request that cannot start within
// DefaultMaxWait (or its context's deadline, if sooner) fails with an
// error wrapping ocierr.Unavailable and ocierr.ErrBusy, with a RetryAfter.
func WithLimits(maxConns int, rps float64) Option {
	return func(o *options) { o.maxConns, o.rps = maxConns, rps }
}

// withMaxWait shortens DefaultMaxWait (tests).
func withMaxWait(d time.Duration) Option { return func(o *options) { o.maxWait = d } }

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

// transport is defaultTransport with o's TLS settings and proxy.
func (o *options) transport() (http.RoundTripper, error) {
	t := defaultTransport()
	if o.proxy != nil {
		t.Proxy = http.ProxyURL(o.proxy)
	}
	cfg, err := o.tls.config()
	if err != nil {
		return nil, err
	}
	if cfg != nil {
		t.TLSClientConfig = cfg
	}
	return t, nil
}

// config builds the tls.Config of t; nil when t sets nothing.
func (t TLS) config() (*tls.Config, error) {
	if t.CAFile == "" && t.CertFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if t.SystemRoots {
			if sys, err := x509.SystemCertPool(); err == nil {
				pool = sys
			}
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca_file %s: no PEM certificate in it", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls cert_file and key_file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// defaultTransport is http.DefaultTransport with bounded dial, TLS and
// response-header timeouts, so a hung upstream fails instead of hanging.
func defaultTransport() *http.Transport {
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
