package cache

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cairn-mirror/cairn/internal/image"
	"github.com/cairn-mirror/cairn/internal/oci"
	"github.com/cairn-mirror/cairn/internal/route"
)

// DefaultPlatform is the platform an index-less client gets from a tag that
// names an index (cache.default_platform), as distribution chooses.
const DefaultPlatform = "linux/amd64"

// WithDefaultPlatform sets the platform ("os/arch[/variant]") whose child
// an index names for clients that accept no index type (default
// DefaultPlatform). It is checked by New.
func WithDefaultPlatform(p string) Option { return func(c *Cache) { c.platformSpec = p } }

func parsePlatform(s string) (v1.Platform, error) {
	p, err := oci.ParsePlatform(s)
	if err != nil {
		return v1.Platform{}, fmt.Errorf("cache: default %w", err)
	}
	return p, nil
}

// childFor is the digest of the index's first child for platform p (see
// oci.PlatformSatisfies), if the body is an index that has one and its
// digest is valid.
func childFor(index []byte, p v1.Platform) (string, bool) {
	im, err := oci.Parse(index)
	if err != nil {
		return "", false
	}
	d, ok := im.ChildFor(p)
	if !ok || route.ValidDigest(d.Digest) != nil {
		return "", false
	}
	return d.Digest, true
}

// ImageOptions selects what FetchImage holds of an image.
type ImageOptions = image.Options

// FetchImage makes sure the image ref (a tag or a digest) names in repo is
// held whole: the manifest, the children of the platforms asked for, every
// config and layer, and, with opts.Referrers, the referrers of each
// manifest with their closures. What is missing is fetched through the
// cache's own flights (one upstream fetch per digest however many callers
// walk the same image); what is held is only checked. It returns when
// everything is stored, or with the first error.
func (c *Cache) FetchImage(ctx context.Context, repo route.Repo, ref string, opts ImageOptions) error {
	root, err := c.Manifest(ctx, repo, ref, nil)
	if err != nil {
		return err
	}
	return image.Walk(ctx, imageSource{c: c, repo: repo}, root, opts, func(n image.Node) error {
		if n.Kind == image.Manifest {
			return nil // read, verified and stored by the walk's Source
		}
		return c.fetchBlob(ctx, repo, n.Descriptor.Digest)
	})
}

// imageSource reads an image's manifests and referrers through the cache.
type imageSource struct {
	c    *Cache
	repo route.Repo
}

func (s imageSource) Manifest(ctx context.Context, dgst string) (oci.Manifest, error) {
	return s.c.Manifest(ctx, s.repo, dgst, nil)
}

func (s imageSource) Referrers(ctx context.Context, dgst string) ([]oci.Descriptor, error) {
	body, _, err := s.c.Referrers(ctx, s.repo, dgst, "")
	if err != nil {
		return nil, err
	}
	idx, err := oci.Parse(body)
	if err != nil {
		return nil, fmt.Errorf("referrers of %s: %w", dgst, err)
	}
	out := make([]oci.Descriptor, len(idx.Manifests))
	for i, d := range idx.Manifests {
		out[i] = oci.DescriptorOf(d)
	}
	return out, nil
}
