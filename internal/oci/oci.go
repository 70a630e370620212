// Package oci holds the small value types that the upstream client, the
// cache and the registry pass along (the registry declares the interfaces,
// the cache implements them, and neither may import the other), so one
// manifest or descriptor type crosses them all without conversion. It
// imports nothing from the project.
package oci

import (
	"context"
	"io"
	"mime"
	"strings"
)

// Media types cairn knows for manifests.
const (
	MediaTypeOCIIndex       = "application/vnd.oci.image.index.v1+json"
	MediaTypeOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerSchema1  = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	MediaTypeOctetStream    = "application/octet-stream"
	MaxManifestBytes        = 4 << 20 // manifests larger than this are refused (413)
)

// DefaultAccept is what cairn asks an upstream for when the client named no
// manifest media type.
func DefaultAccept() []string {
	return []string{MediaTypeOCIIndex, MediaTypeOCIManifest, MediaTypeDockerList, MediaTypeDockerManifest}
}

// Descriptor names content: its media type, digest and size.
type Descriptor struct {
	MediaType string
	Digest    string
	Size      int64
}

// Manifest is a manifest's exact bytes and its descriptor.
type Manifest struct {
	Descriptor
	Body []byte
}

// Blob is an opened blob: a committed file or a fill in progress.
type Blob interface {
	// Size is the blob's length in bytes.
	Size() int64
	// WriteRange writes n bytes from off to w and returns how many it
	// wrote. An error after bytes were written means the blob could not be
	// delivered whole (a failed fill); the caller must then cut the
	// response short rather than end it cleanly. Called at most once.
	WriteRange(ctx context.Context, w io.Writer, off, n int64) (int64, error)
	// Close releases the blob. It is safe after WriteRange and without it.
	Close() error
}

// ParseAccept splits Accept header values into media types, dropping
// parameters (q-values) and blanks.
func ParseAccept(values []string) []string {
	var out []string
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err == nil && mt != "" {
				out = append(out, mt)
			}
		}
	}
	return out
}

// Acceptable reports whether mediaType satisfies accept. An empty list, or
// one holding */*, accepts anything.
func Acceptable(mediaType string, accept []string) bool {
	if len(accept) == 0 {
		return true
	}
	for _, a := range accept {
		if a == mediaType || a == "*/*" {
			return true
		}
	}
	return false
}
