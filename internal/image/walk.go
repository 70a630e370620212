// Package image walks an image's closure: an index, the children of the
// platforms asked for, each manifest's config and layers, and, when asked,
// the referrers of every manifest (signatures, SBOMs, attestations) with
// their own closures. It reads manifests through a Source, so the same walk
// serves pins (through the cache), `cairn cache pin`, export and
// replication (through any registry). Manifests are parsed with oci.Parse
// (image-spec's types, so sha512 content walks too) and platforms matched
// with oci.PlatformSatisfies; every digest a manifest names is checked with
// route.ValidDigest. It imports nothing from the project but internal/oci
// and internal/route.
package image

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cairn-mirror/cairn/internal/oci"
	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/internal/route"
)

// Source reads manifests by digest, and lists the referrers of a digest.
type Source interface {
	// Manifest returns the manifest dgst, its bytes verified.
	Manifest(ctx context.Context, dgst string) (oci.Manifest, error)
	// Referrers returns the descriptors of the manifests whose subject is
	// dgst (none is not an error). Called only with Options.Referrers.
	Referrers(ctx context.Context, dgst string) ([]oci.Descriptor, error)
}

// Options selects what Walk visits.
type Options struct {
	// Platforms keeps an index's children of these platforms
	// ("os/arch" or "os/arch/variant"); empty keeps every child. Children
	// without a platform (attestation manifests) are always kept.
	Platforms []string
	// Referrers also walks the referrers of every manifest visited.
	Referrers bool
}

// Kind says what a visited node is.
type Kind int

const (
	// Blob is a config or a layer.
	Blob Kind = iota
	// Manifest is an image manifest or an index.
	Manifest
)

// Node is one piece of the closure. Parent is the manifest that names it
// ("" for the root), or, for a referrer, its subject.
type Node struct {
	Kind       Kind
	Descriptor oci.Descriptor
	Parent     string
	// Body is a manifest's bytes (nil for a blob).
	Body []byte
}

// Walk visits root's closure in the order a copy must write it: a
// manifest's blobs before the manifest, an index's children (each with
// its blobs) before the index, and a manifest's referrers after it. Each
// digest is visited once. visit's error stops the walk and is returned;
// a child that cannot be read stops it too (a whole image or an error).
func Walk(ctx context.Context, src Source, root oci.Manifest, opts Options, visit func(Node) error) error {
	var want []v1.Platform
	for _, s := range opts.Platforms {
		p, err := oci.ParsePlatform(s)
		if err != nil {
			return err
		}
		want = append(want, p)
	}
	w := &walker{src: src, opts: opts, want: want, visit: visit, seen: map[string]bool{}}
	return w.manifest(ctx, root, "")
}

type walker struct {
	src   Source
	opts  Options
	want  []v1.Platform
	visit func(Node) error
	seen  map[string]bool
	depth int // manifests on the way down to this one
	count int // manifests visited
}

// Bounds on a walk, against an origin that serves an endless chain of
// indexes or referrers: real images nest an index over manifests, and
// referrers a level or two below them.
const (
	MaxDepth     = 16
	MaxManifests = 10000
)

func (w *walker) manifest(ctx context.Context, m oci.Manifest, parent string) error {
	if w.seen[m.Digest] {
		return nil
	}
	w.seen[m.Digest] = true
	if err := ctx.Err(); err != nil {
		return err
	}
	w.depth++
	defer func() { w.depth-- }()
	if w.count++; w.depth > MaxDepth || w.count > MaxManifests {
		return fmt.Errorf("image: %s: nested deeper than %d or more than %d manifests: %w", m.Digest, MaxDepth, MaxManifests, ocierr.ManifestInvalid)
	}
	if oci.IsIndex(m.MediaType) {
		if err := w.index(ctx, m); err != nil {
			return err
		}
	} else if err := w.image(m); err != nil {
		return err
	}
	if err := w.visit(Node{Kind: Manifest, Descriptor: m.Descriptor, Parent: parent, Body: m.Body}); err != nil {
		return err
	}
	if !w.opts.Referrers {
		return nil
	}
	refs, err := w.src.Referrers(ctx, m.Digest)
	if err != nil {
		return fmt.Errorf("referrers of %s: %w", m.Digest, err)
	}
	for _, d := range refs {
		if err := w.child(ctx, d, m.Digest); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) child(ctx context.Context, d oci.Descriptor, parent string) error {
	if w.seen[d.Digest] {
		return nil
	}
	if err := route.ValidDigest(d.Digest); err != nil {
		return fmt.Errorf("manifest named by %s: %w", parent, err)
	}
	m, err := w.src.Manifest(ctx, d.Digest)
	if err != nil {
		return fmt.Errorf("manifest %s (named by %s): %w", d.Digest, parent, err)
	}
	return w.manifest(ctx, m, parent)
}

func (w *walker) index(ctx context.Context, m oci.Manifest) error {
	im, err := oci.Parse(m.Body)
	if err != nil {
		return fmt.Errorf("index %s: %w", m.Digest, err)
	}
	for _, d := range im.Manifests {
		if !w.wanted(d.Platform) {
			continue
		}
		if err := w.child(ctx, oci.DescriptorOf(d), m.Digest); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) image(m oci.Manifest) error {
	im, err := oci.Parse(m.Body)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", m.Digest, err)
	}
	for _, d := range im.Blobs() { // the config, unless an artifact has none, and the layers
		desc := oci.DescriptorOf(d)
		if w.seen[desc.Digest] {
			continue
		}
		if err := route.ValidDigest(desc.Digest); err != nil {
			return fmt.Errorf("blob named by %s: %w", m.Digest, err)
		}
		w.seen[desc.Digest] = true
		node := Node{Kind: Blob, Descriptor: desc, Parent: m.Digest}
		if err := w.visit(node); err != nil {
			return err
		}
	}
	return nil
}

// wanted: no filter, no platform or an unknown one (buildx's attestation
// manifests, kept with the image), or one the filter names (a filter
// without a variant takes every variant).
func (w *walker) wanted(p *specs.Platform) bool {
	if len(w.want) == 0 || p == nil || p.OS == "unknown" {
		return true
	}
	for _, want := range w.want {
		if oci.PlatformSatisfies(p, want) {
			return true
		}
	}
	return false
}
