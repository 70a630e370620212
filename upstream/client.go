package upstream

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"
)

const (
	// transportCacheSize bounds the cached per-repository transports.
	transportCacheSize = 1024
	// buildTimeout bounds one handshake (ping and token exchange). A build
	// runs detached from the caller that started it, since others may wait
	// on it.
	buildTimeout = 30 * time.Second
)

// Client reads from one upstream registry. It is safe for concurrent use.
// New does no network I/O: the first request for a repository pings the
// registry and performs the auth handshake, and later requests for that
// repository reuse the resulting transport.
type Client struct {
	namespace string
	scheme    string        // the URL's scheme, used for every request
	reg       name.Registry // the URL's host; its RegistryStr is the request host
	prefix    string        // the URL's path without its final "/": /v2/ goes after it
	endpoint  string        // the endpoint's name in metrics and logs
	opts      options
	base      http.RoundTripper // under ggcr's transports: scheme pinning, ping metrics
	cache     *lru.Cache[string, http.RoundTripper]
	builds    singleflight.Group
	limits    rateLimits
	gate      *gate
	// ownTransport: New built the base transport (no WithTransport).
	ownTransport bool
}

// New returns a client for the registry at rawURL (http or https; a path
// is the API's root, /v2/ is appended to it), serving namespace. It
// validates its arguments, reads the TLS files it is given, and contacts
// no one.
func New(namespace, rawURL string, opts ...Option) (*Client, error) {
	if namespace == "" {
		return nil, errors.New("upstream: empty namespace")
	}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.validate(namespace); err != nil {
		return nil, err
	}
	u, reg, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	cache, err := lru.New[string, http.RoundTripper](transportCacheSize)
	if err != nil {
		return nil, err
	}
	own := o.base == nil
	if o.base == nil {
		base, err := o.transport()
		if err != nil {
			return nil, fmt.Errorf("upstream %s: %w", namespace, err)
		}
		o.base = base
	}
	if o.metricsNS == "" {
		o.metricsNS = namespace
	}
	prefix := strings.TrimSuffix(u.Path, "/")
	endpoint := o.endpoint
	if endpoint == "" {
		endpoint = reg.RegistryStr() + prefix
	}
	c := &Client{namespace: namespace, scheme: u.Scheme, reg: reg, prefix: prefix, endpoint: endpoint, opts: o, cache: cache, ownTransport: own}
	c.gate = newGate(o.maxConns, o.rps, o.maxWait, o.now)
	c.base = transport.NewUserAgent(&pinnedTransport{
		host: reg.RegistryStr(), scheme: u.Scheme, prefix: prefix, ns: o.metricsNS, endpoint: endpoint, metrics: o.metrics, inner: o.base,
	}, o.userAgent)
	return c, nil
}

// Endpoint is the endpoint's name in metrics and logs: its host and path
// unless WithEndpointName set another.
func (c *Client) Endpoint() string { return c.endpoint }

// upstreamRepo is repo as the endpoint names it (WithRepositoryPrefix).
func (c *Client) upstreamRepo(repo string) string { return c.opts.repoPrefix + repo }

func (o *options) validate(namespace string) error {
	if o.retries < 0 {
		return fmt.Errorf("upstream %s: negative retries %d", namespace, o.retries)
	}
	if o.auth != nil && o.keychain != nil {
		return fmt.Errorf("upstream %s: WithBasic and WithKeychain are exclusive", namespace)
	}
	if o.keychain != nil {
		if _, err := name.NewRegistry(namespace); err != nil {
			return fmt.Errorf("upstream %s: namespace is not a registry name for the keychain: %w", namespace, err)
		}
	}
	if o.logger == nil {
		return fmt.Errorf("upstream %s: nil logger", namespace)
	}
	if o.maxConns < 0 || o.rps < 0 || o.maxWait < 0 {
		return fmt.Errorf("upstream %s: negative limits (%d connections, %g requests per second, wait %v)", namespace, o.maxConns, o.rps, o.maxWait)
	}
	if o.repoPrefix != "" && (!strings.HasSuffix(o.repoPrefix, "/") || validateRepo(strings.TrimSuffix(o.repoPrefix, "/")) != nil) {
		return fmt.Errorf("upstream %s: repository prefix %q: want repository components ending in /", namespace, o.repoPrefix)
	}
	return nil
}

// parseURL accepts http(s)://host[:port][/path][/]; the path must not
// hold /v2 (it is appended).
func parseURL(rawURL string) (*url.URL, name.Registry, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, name.Registry{}, fmt.Errorf("upstream url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, name.Registry{}, fmt.Errorf("upstream url %q: scheme must be http or https", rawURL)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.RawPath != "" {
		return nil, name.Registry{}, fmt.Errorf("upstream url %q: want scheme://host[:port][/path] only", rawURL)
	}
	if p := strings.TrimSuffix(u.Path, "/"); strings.HasSuffix(p, "/v2") || strings.Contains(p, "/v2/") || strings.Contains(p, "//") {
		return nil, name.Registry{}, fmt.Errorf("upstream url %q: the path is the API's root, without /v2 (appended) or empty segments", rawURL)
	}
	var nopts []name.Option
	if u.Scheme == "http" {
		nopts = append(nopts, name.Insecure)
	}
	reg, err := name.NewRegistry(u.Host, nopts...)
	if err != nil {
		return nil, name.Registry{}, fmt.Errorf("upstream url %q: %w", rawURL, err)
	}
	return u, reg, nil
}

// Namespace is the namespace this client serves.
func (c *Client) Namespace() string { return c.namespace }

// transportFor returns the authenticated transport for repo, building it
// once (concurrent first callers share one build; a failure is not cached).
func (c *Client) transportFor(ctx context.Context, repo string) (http.RoundTripper, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key := repo + "\x00" + transport.PullScope
	if rt, ok := c.cache.Get(key); ok {
		return rt, nil
	}
	ch := c.builds.DoChan(key, func() (any, error) {
		if rt, ok := c.cache.Get(key); ok {
			return rt, nil
		}
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), buildTimeout)
		defer cancel()
		rt, err := c.build(bctx, repo)
		if err != nil {
			return nil, err
		}
		c.cache.Add(key, rt)
		return rt, nil
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(http.RoundTripper), nil
	}
}

// build pings the registry and performs the handshake for pulling repo.
// transport.NewWithContext adds no retry layer (only pkg/v1/remote does).
func (c *Client) build(ctx context.Context, repo string) (http.RoundTripper, error) {
	auth, err := c.authenticator(ctx)
	if err != nil {
		return nil, err
	}
	scopes := []string{c.reg.Repo(repo).Scope(transport.PullScope)}
	rt, err := transport.NewWithContext(ctx, c.reg, auth, c.base, scopes)
	if err != nil {
		return nil, err
	}
	c.opts.logger.DebugContext(ctx, "upstream transport built", "upstream", c.namespace, "repo", repo)
	return rt, nil
}

func (c *Client) authenticator(ctx context.Context) (authn.Authenticator, error) {
	switch {
	case c.opts.auth != nil:
		return c.opts.auth, nil
	case c.opts.keychain != nil:
		target, err := name.NewRegistry(c.namespace) // validated in New
		if err != nil {
			return nil, err
		}
		auth, err := authn.Resolve(ctx, c.opts.keychain, target)
		if err != nil {
			return nil, fmt.Errorf("resolving credentials: %w", err)
		}
		return auth, nil
	default:
		return authn.Anonymous, nil
	}
}

// newRequest builds a request to the registry; do clones it per attempt.
func (c *Client) newRequest(method, path string, query url.Values) *http.Request {
	u := &url.URL{Scheme: c.scheme, Host: c.reg.RegistryStr(), Path: c.prefix + path, RawQuery: query.Encode()}
	return &http.Request{Method: method, URL: u, Host: u.Host, Header: http.Header{}}
}

// pinnedTransport sits under ggcr's transports and, for the registry's
// host, keeps to the URL's scheme and counts pings. For http URLs and for
// loopback, private and .local hosts, ggcr's Ping races https against http
// (transport/ping.go pingParallel). The racer in the other scheme fails here
// at once, without touching the network: an https upstream is never
// downgraded, and a failing ping is sent once, not once per scheme. Other
// requests in the other scheme (a token realm on the registry's host) are
// rewritten to the URL's scheme.
var errOtherScheme = errors.New("scheme differs from the upstream URL's")

type pinnedTransport struct {
	host, scheme, prefix string
	ns, endpoint         string // metric labels
	metrics              *Metrics
	inner                http.RoundTripper
}

func (t *pinnedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != t.host {
		return t.inner.RoundTrip(req)
	}
	if req.URL.Scheme != t.scheme && req.URL.Path == "/v2/" {
		return nil, fmt.Errorf("not pinging %s://%s: %w", req.URL.Scheme, t.host, errOtherScheme)
	}
	if req.URL.Scheme != t.scheme {
		req = req.Clone(req.Context())
		req.URL.Scheme = t.scheme
	}
	if req.URL.Path != "/v2/" {
		return t.inner.RoundTrip(req)
	}
	if t.prefix != "" {
		// ggcr pings the host's /v2/: the API lives under the prefix.
		// cairn's own requests always carry the prefix already.
		req = req.Clone(req.Context())
		req.URL.Path = t.prefix + "/v2/"
	}
	start := time.Now()
	resp, err := t.inner.RoundTrip(req)
	status := 0
	if err == nil {
		status = resp.StatusCode
	}
	t.metrics.observe(t.ns, t.endpoint, OpPing, status, time.Since(start))
	return resp, err
}

// CloseIdleConnections closes the idle connections of the client's own
// transport (not of one given with WithTransport, which others may share).
func (c *Client) CloseIdleConnections() {
	if c.ownTransport {
		if t, ok := c.opts.base.(interface{ CloseIdleConnections() }); ok {
			t.CloseIdleConnections()
		}
	}
}
