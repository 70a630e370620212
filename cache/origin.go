package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/cairn-mirror/cairn/internal/breaker"
	"github.com/cairn-mirror/cairn/internal/oci"
	"github.com/cairn-mirror/cairn/internal/ocierr"
)

// Origin is where the cache reads what it does not hold: a mirror
// namespace's upstream registry today (upstream.Client implements it), a
// peer node of the site, a parent cairn or an OCI layout later. Every read
// of a remote thing goes through one; no cache code knows which kind it is.
//
// The contract:
//   - repo is the repository's name inside its namespace (no namespace
//     prefix); ref a tag or a digest.
//   - Manifest and HeadManifest ask for every manifest type cairn stores
//     (oci.OriginAccept), whatever the client accepts, so that a tag has
//     one manifest for all clients. Manifest returns the exact bytes and
//     verifies them against ref when ref is a digest (ocierr.Unavailable
//     on a mismatch); HeadManifest's Digest may be "" for a tag when the
//     origin did not say, and Size -1.
//   - OpenBlob returns the body from offset, or from 0 when the origin
//     ignored the offset (RemoteBlob.Offset says which), Size -1 when
//     unknown. The caller verifies the digest while reading and closes the
//     body. Reads from the body honour ctx.
//   - Referrers returns an OCI index; filtered reports that artifactType
//     was applied. An origin without the referrers API answers an error
//     wrapping oci.ErrNoReferrersAPI.
//   - Errors wrap ocierr codes: Unavailable for an outage or a body that
//     broke (what the circuit breaker counts, serve-stale covers and the
//     next origin in line is tried for), ManifestUnknown, BlobUnknown or
//     NameUnknown for absent content, Unauthorized or Denied, and
//     TooManyRequests (its RetryAfter, if any, in the error chain).
//   - Every method honours ctx, and is safe for concurrent use.
type Origin interface {
	Manifest(ctx context.Context, repo, ref string) (*oci.Manifest, error)
	HeadManifest(ctx context.Context, repo, ref string) (oci.Descriptor, error)
	Tags(ctx context.Context, repo string, n int, last string) (tags []string, more bool, err error)
	Referrers(ctx context.Context, repo, digest, artifactType string) (index []byte, filtered bool, err error)
	HeadBlob(ctx context.Context, repo, digest string) (oci.Descriptor, error)
	OpenBlob(ctx context.Context, repo, digest string, offset int64) (*oci.RemoteBlob, error)
}

// RateLimiter is an Origin that reports the pull budget it was last told
// (the namespace's rate_limit_floor reads it). ok is false until the
// origin has sent one.
type RateLimiter interface {
	RateLimit() (rl oci.RateLimit, ok bool)
}

// Owners tells the cache who owns a key in its site: the cluster
// implements it; without one, every key is this node's alone.
//
// The contract:
//   - Owners returns the nodes that own key in namespace, best first, as
//     a rendezvous hash ranks them: this node among them (Self) when it
//     is one of the key's owners. A key is a digest ("sha256:...") or a
//     tag key made by TagKey.
//   - The cache asks every owner ranked before this node, in order, then
//     reads from the namespace's own Origin (the upstream) as this node
//     would; owners ranked after Self are never asked. An owner that
//     fails (any error but the caller's own cancellation) is passed over
//     for the next, and the reason is counted
//     (cairn_origin_passed_over_total).
//   - It is called on every miss, concurrently: it must answer from
//     memory (membership already known), never block on the network,
//     and never return nil for a live site (an empty list means "no
//     owner but the upstream"). The returned slice is the caller's.
type Owners interface {
	Owners(namespace, key string) []Owner
}

// Owner is one node that owns a key.
type Owner struct {
	// Name identifies the node in logs and metrics' reasons.
	Name string
	// Self marks this node: the cache reads from the namespace's own
	// Origin when it comes to it.
	Self bool
	// Origin reads from that node (nil for Self).
	Origin Origin
}

// TagKey is the key under which a tag's owner is found.
func TagKey(namespace, repo, tag string) string {
	return "tag\x00" + namespace + "\x00" + repo + "\x00" + tag
}

// alone is the owners of every key on a node without a cluster.
type alone struct{}

func (alone) Owners(string, string) []Owner { return []Owner{{Name: "self", Self: true}} }

// WithOwners sets who owns what in the site (default: this node alone).
func WithOwners(o Owners) Option { return func(c *Cache) { c.owners = o } }

// candidate is one origin a request may read from, in the order tried.
type candidate struct {
	kind    string // "peer" or "upstream", for metrics
	name    string // a peer's node name, or the namespace
	origin  Origin
	breaker *breaker.Breaker
}

// candidates lists the origins a read of key in ns tries, in order: the
// owners ranked before this node, then the namespace's upstream. A hosted
// namespace has no upstream: only owners, if any.
func (c *Cache) candidates(ns *Namespace, key string) []candidate {
	owners := c.owners.Owners(ns.Name, key)
	out := make([]candidate, 0, len(owners)+1)
	for _, o := range owners {
		if o.Self {
			break
		}
		if o.Origin != nil {
			out = append(out, candidate{kind: "peer", name: o.Name, origin: o.Origin, breaker: c.peerBreaker(o.Name)})
		}
	}
	if ns.Origin != nil {
		b := ns.breaker // a wildcard host's own
		if b == nil {
			b = c.breakers[ns.Name]
		}
		out = append(out, candidate{kind: "upstream", name: ns.Name, origin: ns.Origin, breaker: b})
	}
	return out
}

// peerBreaker is the circuit breaker of a peer node, made on first use
// (as many as the site has nodes).
func (c *Cache) peerBreaker(name string) *breaker.Breaker {
	c.peerMu.Lock()
	defer c.peerMu.Unlock()
	b, ok := c.peerBreakers[name]
	if !ok {
		b = breaker.New(c.breakAt, c.cooldown)
		c.peerBreakers[name] = b
	}
	return b
}

// fromOrigins runs call against each candidate origin of key in turn,
// under that origin's breaker and timeout, until one answers. A failure
// passes to the next candidate (counted with its reason) unless the
// caller's ctx ended; the last candidate's error is returned. With no
// candidate at all the answer is what a hosted namespace says: unknown.
func fromOrigins[T any](ctx context.Context, c *Cache, ns *Namespace, key string, timeout time.Duration, call func(context.Context, Origin) (T, error)) (T, error) {
	var zero T
	cands := c.candidates(ns, key)
	if len(cands) == 0 {
		return zero, fmt.Errorf("namespace %s has no origin for %s: %w", ns.Name, key, ocierr.ManifestUnknown)
	}
	var v T
	_, err := c.try(ctx, ns, cands, 0, func(i int) (err error) {
		return c.guard(ctx, cands[i], timeout, func(ctx context.Context) (err error) {
			v, err = call(ctx, cands[i].origin)
			return err
		})
	})
	return v, err
}

// try runs attempt on cands[from:] in turn until one succeeds, and says
// which. A failure passes to the next candidate, counted with its reason,
// unless the caller's ctx ended; the last failure is returned (at -1).
func (c *Cache) try(ctx context.Context, ns *Namespace, cands []candidate, from int, attempt func(i int) error) (int, error) {
	var err error
	for i := from; i < len(cands); i++ {
		if err = attempt(i); err == nil {
			return i, nil
		}
		if ctx.Err() != nil || i == len(cands)-1 {
			break
		}
		c.passedOver(ns, cands[i], err)
	}
	return -1, err
}

// passedOver counts and logs an origin left for the next one.
func (c *Cache) passedOver(ns *Namespace, cand candidate, err error) {
	reason := passReason(err)
	c.metrics.passedOver.WithLabelValues(ns.label(), cand.kind, reason).Inc()
	c.log.Info("origin passed over", "namespace", ns.Name, "origin", cand.kind, "name", cand.name, "reason", reason, "err", err)
}

func passReason(err error) string {
	switch {
	case errors.Is(err, errCircuitOpen):
		return "circuit_open"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, errIdle):
		return "timeout"
	case errors.Is(err, ocierr.Unavailable):
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

// blobSource is where a fill reads its blob: the candidates of its digest,
// tried in order. Open is called by the fill's pump (one at a time) and by
// readers that stream uncached (concurrently): the position in the list
// only moves forward, so a resumed fill does not go back to an origin that
// already failed it.
type blobSource interface {
	Open(ctx context.Context, offset int64) (*oci.RemoteBlob, error)
}

type originSource struct {
	c      *Cache
	ns     *Namespace
	repo   string
	digest string
	cands  []candidate
	at     atomic.Int32 // the candidate tried first
}

func (c *Cache) newOriginSource(ns *Namespace, repo, dgst string) *originSource {
	return &originSource{c: c, ns: ns, repo: repo, digest: dgst, cands: c.candidates(ns, dgst)}
}

// Open opens the body at offset, under each origin's breaker. The last
// origin has no timeout of its own: the fill's idle timer bounds it. One
// before it (an owner peer) must answer within half the idle timeout, so
// that a peer that hangs is passed over for the next while the fill's own
// timer still runs, instead of failing the fill.
func (s *originSource) Open(ctx context.Context, offset int64) (*oci.RemoteBlob, error) {
	if len(s.cands) == 0 {
		return nil, fmt.Errorf("blob %s: no origin: %w", s.digest, ocierr.BlobUnknown)
	}
	from := int(s.at.Load())
	var b *oci.RemoteBlob
	i, err := s.c.try(ctx, s.ns, s.cands, from, func(i int) (err error) {
		b, err = s.open(ctx, s.cands[i], offset, i == len(s.cands)-1)
		return err
	})
	if i > from {
		s.at.CompareAndSwap(int32(from), int32(i)) // the ones before failed it
	}
	return b, err
}

func (s *originSource) open(ctx context.Context, cand candidate, offset int64, last bool) (*oci.RemoteBlob, error) {
	if last {
		var b *oci.RemoteBlob
		err := s.c.guard(ctx, cand, 0, func(ctx context.Context) (err error) {
			b, err = cand.origin.OpenBlob(ctx, s.repo, s.digest, offset)
			return err
		})
		return b, err
	}
	octx, cancel := context.WithCancelCause(ctx)
	wait := time.AfterFunc(s.ns.FillIdleTimeout/2, func() { cancel(errIdle) })
	var b *oci.RemoteBlob
	err := s.c.guard(octx, cand, 0, func(ctx context.Context) (err error) {
		b, err = cand.origin.OpenBlob(ctx, s.repo, s.digest, offset)
		return err
	})
	if !wait.Stop() || err != nil {
		cancel(nil)
		if err == nil { // answered as the timer fired: the body is cut
			b.Body.Close()
			err = fmt.Errorf("%s %s: %w: %w", cand.kind, cand.name, errIdle, ocierr.Unavailable)
		}
		return nil, err
	}
	b.Body = cancelOnClose{ReadCloser: b.Body, cancel: cancel} // the body reads under octx
	return b, nil
}

// cancelOnClose ends a body's own context when the body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelCauseFunc
}

func (b cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel(nil)
	return err
}
