package cache

import (
	"bytes"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// DefaultPlatform is the platform an index-less client gets from a tag that
// names an index (cache.default_platform), as distribution chooses.
const DefaultPlatform = "linux/amd64"

// WithDefaultPlatform sets the platform ("os/arch[/variant]") whose child
// an index names for clients that accept no index type (default
// DefaultPlatform). It is checked by New.
func WithDefaultPlatform(p string) Option { return func(c *Cache) { c.platformSpec = p } }

func parsePlatform(s string) (v1.Platform, error) {
	p, err := v1.ParsePlatform(s)
	if err != nil || p.OS == "" || p.Architecture == "" {
		return v1.Platform{}, fmt.Errorf("cache: default platform %q: want os/arch or os/arch/variant", s)
	}
	return *p, nil
}

// childFor is the digest of the index's first child for platform p, if
// the body is an index that has one.
func childFor(index []byte, p v1.Platform) (string, bool) {
	im, err := v1.ParseIndexManifest(bytes.NewReader(index))
	if err != nil {
		return "", false
	}
	for _, d := range im.Manifests {
		if d.Platform != nil && d.Platform.Satisfies(p) {
			return d.Digest.String(), true
		}
	}
	return "", false
}
