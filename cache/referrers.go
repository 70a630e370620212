package cache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/cairn-mirror/cairn/internal/oci"
	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/internal/route"
)

// referrersLRUSize answers stay in memory, each at most maxLRUReferrers
// bytes: 64 MiB at worst. Larger answers are served but not kept (and so
// not served stale).
const (
	referrersLRUSize = 1024
	maxLRUReferrers  = 64 << 10
)

// referrersCache keeps mirror namespaces' referrers answers for the
// namespace's tag TTL, and past it while the upstream is down. Hosted
// namespaces answer from their tags and are not kept here.
type referrersCache struct {
	lru *lru.Cache[referrersKey, referrersEntry]
}

type referrersKey struct{ ns, repo, digest, artifactType string }

type referrersEntry struct {
	index   []byte // the answer as served: filtered when artifactType is set
	fetched time.Time
}

func newReferrersCache() *referrersCache {
	l, _ := lru.New[referrersKey, referrersEntry](referrersLRUSize) // errors only for size <= 0
	return &referrersCache{lru: l}
}

// Referrers answers the referrers API for dgst in repo: an OCI index of the
// manifests whose subject is dgst, only those of artifactType when it is
// not empty (filtered then reports the filter was applied). Manifests
// pushed into repo with dgst as their subject are always listed; to them
// are added the referrers found elsewhere (see referrersElsewhere).
func (c *Cache) Referrers(ctx context.Context, repo route.Repo, dgst, artifactType string) ([]byte, bool, error) {
	index, filtered, err := c.referrersElsewhere(ctx, repo, dgst, artifactType)
	if err != nil {
		return nil, false, err
	}
	pushed, err := c.store.Referrers(repo.Namespace, repo.Name, dgst)
	if err != nil || len(pushed) == 0 {
		return index, filtered, err
	}
	extra := make([]json.RawMessage, len(pushed))
	for i, d := range pushed {
		extra[i] = d
	}
	index, err = filterReferrers(index, artifactType, extra...)
	return index, filtered, err
}

// referrersElsewhere answers from the upstream or the referrers tag. A mirror asks
// its upstream's referrers API, or, when the upstream has none, resolves
// the referrers tag (<alg>-<hex>) like any tag; a hosted namespace reads
// the tag only. No referrers is an empty index, never an error. Errors
// wrap ocierr codes: Unavailable when the upstream is down and nothing
// held can answer.
func (c *Cache) referrersElsewhere(ctx context.Context, repo route.Repo, dgst, artifactType string) ([]byte, bool, error) {
	ns, err := c.namespace(repo.Namespace)
	if err != nil {
		return nil, false, err
	}
	filtered := artifactType != ""
	if ns.Origin == nil {
		index, err := c.referrersFromTag(ctx, repo, dgst, artifactType)
		return index, filtered, err
	}
	key := referrersKey{ns: repo.Namespace, repo: repo.Name, digest: dgst, artifactType: artifactType}
	held, ok := c.referrers.lru.Get(key)
	if ok && c.now().Sub(held.fetched) < ns.TagTTL {
		c.count("referrers", "hit")
		return held.index, filtered, nil
	}
	c.count("referrers", "miss")
	index, err := c.upstreamReferrers(ctx, ns, repo, dgst, artifactType)
	if err == nil {
		if len(index) <= maxLRUReferrers {
			c.referrers.lru.Add(key, referrersEntry{index: index, fetched: c.now()})
		}
		return index, filtered, nil
	}
	if !c.staleAllowed(ns, err) {
		return nil, false, err
	}
	if ok {
		c.servedStale(ns, repo, dgst, err)
		return held.index, filtered, nil
	}
	index, lerr := c.localReferrersTag(repo, dgst, artifactType)
	if lerr != nil {
		return nil, false, err
	}
	c.servedStale(ns, repo, dgst, err)
	return index, filtered, nil
}

func (c *Cache) servedStale(ns *Namespace, repo route.Repo, dgst string, err error) {
	c.metrics.staleTotal.WithLabelValues(ns.label()).Inc()
	c.count("referrers", "stale")
	c.log.Warn("upstream failed, serving last known referrers", "repo", repo.Canonical(), "digest", dgst, "err", err)
}

// upstreamReferrers asks the upstream's referrers API, and falls back to
// the referrers tag when it has none.
func (c *Cache) upstreamReferrers(ctx context.Context, ns *Namespace, repo route.Repo, dgst, artifactType string) ([]byte, error) {
	body, err := fromOrigins(ctx, c, ns, "referrers\x00"+dgst, ns.RequestTimeout, func(ctx context.Context, o Origin) ([]byte, error) {
		body, _, err := o.Referrers(ctx, repo.Name, dgst, artifactType)
		return body, err
	})
	if errors.Is(err, oci.ErrNoReferrersAPI) {
		return c.referrersFromTag(ctx, repo, dgst, artifactType)
	}
	if err != nil {
		return nil, err
	}
	// Filtering again is harmless when the upstream already did it.
	index, err := filterReferrers(body, artifactType)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: referrers of %s: %w: %w", ns.Name, dgst, ocierr.Unavailable, err)
	}
	return index, nil
}

// referrersTag is the referrers tag schema's tag for dgst: "sha256-<hex>".
func referrersTag(dgst string) string { return strings.Replace(dgst, ":", "-", 1) }

// referrersFromTag resolves the referrers tag through the manifest path
// (stored, revalidated and served stale like any tag). No such tag is no
// referrers.
func (c *Cache) referrersFromTag(ctx context.Context, repo route.Repo, dgst, artifactType string) ([]byte, error) {
	m, err := c.Manifest(ctx, repo, referrersTag(dgst), []string{oci.MediaTypeOCIIndex})
	if errors.Is(err, ocierr.ManifestUnknown) || errors.Is(err, ocierr.NameUnknown) {
		return filterReferrers(nil, artifactType)
	}
	if err != nil {
		return nil, err
	}
	return c.tagReferrers(repo, m, artifactType)
}

// localReferrersTag reads the referrers tag from what this node holds,
// without asking anyone.
func (c *Cache) localReferrersTag(repo route.Repo, dgst, artifactType string) ([]byte, error) {
	rec, err := c.store.Tag(repo.Namespace, repo.Name, referrersTag(dgst))
	if err != nil {
		return nil, err
	}
	m, err := c.localManifest(rec.Digest)
	if err != nil {
		return nil, err
	}
	return c.tagReferrers(repo, m, artifactType)
}

// tagReferrers reads a referrers tag's index. A tag that holds something
// else (someone tagged an image sha256-...) lists no referrers.
func (c *Cache) tagReferrers(repo route.Repo, m oci.Manifest, artifactType string) ([]byte, error) {
	if m.MediaType == oci.MediaTypeOCIIndex {
		if index, err := filterReferrers(m.Body, artifactType); err == nil {
			return index, nil
		}
	}
	c.log.Debug("referrers tag holds no OCI index", "repo", repo.Canonical(), "digest", m.Digest, "media_type", m.MediaType)
	return filterReferrers(nil, artifactType)
}

// referrersIndex is the answer's shape. Descriptors are kept as sent.
type referrersIndex struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	Manifests     []json.RawMessage `json:"manifests"`
}

// filterReferrers rebuilds an index (nil body: an empty one), with the
// descriptors extra added, holding the descriptors of artifactType only,
// or all of them when it is empty; each digest once, the first kept.
func filterReferrers(body []byte, artifactType string, extra ...json.RawMessage) ([]byte, error) {
	out := referrersIndex{SchemaVersion: 2, MediaType: oci.MediaTypeOCIIndex, Manifests: []json.RawMessage{}}
	var in struct {
		Manifests []json.RawMessage `json:"manifests"`
	}
	if body != nil {
		if err := json.Unmarshal(body, &in); err != nil {
			return nil, fmt.Errorf("referrers index: %w", err)
		}
	}
	seen := map[string]bool{}
	for _, d := range append(in.Manifests, extra...) {
		var desc struct {
			Digest       string `json:"digest"`
			ArtifactType string `json:"artifactType"`
		}
		if err := json.Unmarshal(d, &desc); err != nil {
			return nil, fmt.Errorf("referrers index descriptor: %w", err)
		}
		if seen[desc.Digest] {
			continue
		}
		seen[desc.Digest] = true
		if artifactType == "" || desc.ArtifactType == artifactType {
			out.Manifests = append(out.Manifests, d)
		}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
