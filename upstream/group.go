package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cairn-mirror/cairn/internal/breaker"
	"github.com/cairn-mirror/cairn/internal/oci"
	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/internal/route"
)

// Member is one endpoint of a Group and what it may be asked: Pull, content
// by digest (blobs, manifests by digest); Resolve, what a name means now
// (manifests by tag, tag lists, referrers). The words are containerd's
// hosts.toml capabilities.
type Member struct {
	Client        *Client
	Pull, Resolve bool
}

// Group is a namespace's upstream as several endpoints tried in order: a
// request goes to the first endpoint with the capability it needs whose
// circuit breaker is closed, and on a failure (connection error, 5xx, 429,
// timeout, a local limit, a not-found, a lying answer) to the next one. A
// tag is only ever resolved at a Resolve endpoint, so a lagging pull-only
// mirror never serves an old tag; content from any endpoint is verified
// the same way by its Client. Each endpoint keeps its own credentials:
// every Client logs in to its own host only. Safe for concurrent use; it
// implements the cache's Origin and RateLimiter.
type Group struct {
	namespace string
	members   []member
	metrics   *Metrics
	metricsNS string
	log       *slog.Logger
	now       func() time.Time
}

type member struct {
	Member
	breaker *breaker.Breaker
}

// GroupOptions configure a Group: its endpoints' circuit breakers (open
// after BreakerFailures outages in a row, for BreakerCooldown), metrics,
// logger and clock. Zero values take the defaults: 5 failures, 30 s, no
// metrics, no logs, time.Now.
type GroupOptions struct {
	BreakerFailures  int
	BreakerCooldown  time.Duration
	Metrics          *Metrics
	MetricsNamespace string // the namespace label; default: namespace
	Logger           *slog.Logger
	Now              func() time.Time
}

// NewGroup returns a group over members, in order. At least one member must
// have Pull and one Resolve.
func NewGroup(namespace string, members []Member, o GroupOptions) (*Group, error) {
	if len(members) == 0 {
		return nil, fmt.Errorf("upstream %s: no endpoints", namespace)
	}
	pull, resolve := false, false
	g := &Group{namespace: namespace, metrics: o.Metrics, metricsNS: o.MetricsNamespace, log: o.Logger, now: o.Now}
	if o.BreakerFailures <= 0 {
		o.BreakerFailures = 5
	}
	if o.BreakerCooldown <= 0 {
		o.BreakerCooldown = 30 * time.Second
	}
	if g.metricsNS == "" {
		g.metricsNS = namespace
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
	}
	for i, m := range members {
		if m.Client == nil || (!m.Pull && !m.Resolve) {
			return nil, fmt.Errorf("upstream %s: endpoint %d: no client, or neither pull nor resolve", namespace, i)
		}
		pull, resolve = pull || m.Pull, resolve || m.Resolve
		g.members = append(g.members, member{Member: m, breaker: breaker.New(o.BreakerFailures, o.BreakerCooldown)})
	}
	if !pull || !resolve {
		return nil, fmt.Errorf("upstream %s: no endpoint can pull or none can resolve", namespace)
	}
	return g, nil
}

// Namespace is the namespace the group serves.
func (g *Group) Namespace() string { return g.namespace }

// errEndpointCircuitOpen answers for an endpoint whose breaker is open.
var errEndpointCircuitOpen = errors.New("endpoint's circuit open after repeated failures")

// capability names what a request needs of an endpoint.
type capability int

const (
	capPull capability = iota
	capResolve
)

func (m *member) has(c capability) bool {
	if c == capPull {
		return m.Pull
	}
	return m.Resolve
}

// try runs call on each endpoint with capability c in turn, under its
// breaker, until one succeeds. It stops early when the caller's context
// ends or the request itself is invalid; otherwise the last endpoint's
// error is returned.
func try[T any](ctx context.Context, g *Group, c capability, call func(*Client) (T, error)) (T, error) {
	var zero T
	var last error
	for i := range g.members {
		m := &g.members[i]
		if !m.has(c) {
			continue
		}
		if !m.breaker.Allow(g.now()) {
			last = fmt.Errorf("upstream %s (endpoint %s): %w: %w", g.namespace, m.Client.Endpoint(), errEndpointCircuitOpen, ocierr.Unavailable)
			g.passOver(ctx, m, last)
			continue
		}
		v, err := call(m.Client)
		m.breaker.Record(err, g.now())
		if err == nil {
			return v, nil
		}
		if ctx.Err() != nil || !failover(err) {
			return zero, err
		}
		last = err
		g.passOver(ctx, m, err)
	}
	return zero, last
}

// failover reports whether err may be another endpoint's to answer: not
// when the request itself is wrong.
func failover(err error) bool {
	for _, code := range []ocierr.Code{ocierr.NameInvalid, ocierr.DigestInvalid, ocierr.RangeInvalid, ocierr.PaginationInvalid} {
		if errors.Is(err, code) {
			return false
		}
	}
	return true
}

func (g *Group) passOver(ctx context.Context, m *member, err error) {
	reason := failoverReason(err)
	g.metrics.failover(g.metricsNS, m.Client.Endpoint(), reason)
	g.log.DebugContext(ctx, "upstream endpoint failed, trying the next", "upstream", g.namespace, "endpoint", m.Client.Endpoint(), "reason", reason, "err", err)
}

func failoverReason(err error) string {
	switch {
	case errors.Is(err, errEndpointCircuitOpen):
		return "circuit_open"
	case errors.Is(err, ocierr.ErrBusy):
		return "busy"
	case errors.Is(err, ocierr.Unavailable), errors.Is(err, context.DeadlineExceeded):
		return "unavailable"
	case errors.Is(err, ocierr.TooManyRequests):
		return "rate_limited"
	case errors.Is(err, ocierr.ManifestUnknown), errors.Is(err, ocierr.BlobUnknown), errors.Is(err, ocierr.NameUnknown):
		return "not_found"
	case errors.Is(err, ocierr.Unauthorized), errors.Is(err, ocierr.Denied):
		return "denied"
	}
	return "error"
}

// refCapability: a digest is content (pull), a tag a name (resolve).
func refCapability(ref string) capability {
	if route.IsDigest(ref) {
		return capPull
	}
	return capResolve
}

// Manifest GETs ref from the first endpoint that answers: a tag at resolve
// endpoints only, a digest at pull endpoints.
func (g *Group) Manifest(ctx context.Context, repo, ref string) (*oci.Manifest, error) {
	return try(ctx, g, refCapability(ref), func(c *Client) (*oci.Manifest, error) { return c.Manifest(ctx, repo, ref) })
}

// HeadManifest HEADs ref like Manifest.
func (g *Group) HeadManifest(ctx context.Context, repo, ref string) (oci.Descriptor, error) {
	return try(ctx, g, refCapability(ref), func(c *Client) (oci.Descriptor, error) { return c.HeadManifest(ctx, repo, ref) })
}

// Tags lists at resolve endpoints only.
func (g *Group) Tags(ctx context.Context, repo string, n int, last string) ([]string, bool, error) {
	type page struct {
		tags []string
		more bool
	}
	p, err := try(ctx, g, capResolve, func(c *Client) (page, error) {
		tags, more, err := c.Tags(ctx, repo, n, last)
		return page{tags, more}, err
	})
	return p.tags, p.more, err
}

// Referrers asks resolve endpoints only: the answer changes as artifacts
// are attached, like a tag.
func (g *Group) Referrers(ctx context.Context, repo, digest, artifactType string) ([]byte, bool, error) {
	type answer struct {
		index    []byte
		filtered bool
	}
	a, err := try(ctx, g, capResolve, func(c *Client) (answer, error) {
		index, filtered, err := c.Referrers(ctx, repo, digest, artifactType)
		return answer{index, filtered}, err
	})
	return a.index, a.filtered, err
}

// HeadBlob asks pull endpoints.
func (g *Group) HeadBlob(ctx context.Context, repo, digest string) (oci.Descriptor, error) {
	return try(ctx, g, capPull, func(c *Client) (oci.Descriptor, error) { return c.HeadBlob(ctx, repo, digest) })
}

// OpenBlob opens the blob at the first pull endpoint that answers.
func (g *Group) OpenBlob(ctx context.Context, repo, digest string, offset int64) (*oci.RemoteBlob, error) {
	return try(ctx, g, capPull, func(c *Client) (*oci.RemoteBlob, error) { return c.OpenBlob(ctx, repo, digest, offset) })
}

// RateLimit is the newest pull budget any resolve endpoint reported (tags
// are what Docker Hub counts).
func (g *Group) RateLimit() (oci.RateLimit, bool) {
	var best oci.RateLimit
	found := false
	for i := range g.members {
		m := &g.members[i]
		if !m.Resolve {
			continue
		}
		if rl, ok := m.Client.RateLimit(); ok && (!found || rl.Seen.After(best.Seen)) {
			best, found = rl, true
		}
	}
	return best, found
}

// CloseIdleConnections closes every endpoint's idle connections (a
// wildcard host's upstream being dropped).
func (g *Group) CloseIdleConnections() {
	for i := range g.members {
		g.members[i].Client.CloseIdleConnections()
	}
}
