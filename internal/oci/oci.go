// Package oci holds the small value types that the upstream client, the
// cache and the registry pass along (the registry declares the interfaces,
// the cache implements them, and neither may import the other), so one
// manifest or descriptor type crosses them all without conversion. It
// imports nothing from the project.
package oci

import (
	"context"
	"errors"
	"io"
	"mime"
	"strings"
	"time"
)

// Media types cairn knows for manifests.
const (
	MediaTypeOCIIndex       = "application/vnd.oci.image.index.v1+json"
	MediaTypeOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerSchema1  = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	MediaTypeOCIArtifact    = "application/vnd.oci.artifact.manifest.v1+json"
	MediaTypeOctetStream    = "application/octet-stream"
	MaxManifestBytes        = 4 << 20 // manifests larger than this are refused (413)
)

// OriginAccept is the one Accept list cairn sends to every origin for
// every manifest GET and HEAD, whatever its client sent: every manifest
// type cairn stores, never Docker schema 1. A registry that would convert
// a schema 2 manifest into a freshly signed schema 1 for a narrower list
// (distribution 2.x does) then answers the same bytes every time, so a tag
// has one stored manifest and one digest for all clients.
func OriginAccept() []string {
	return []string{MediaTypeOCIIndex, MediaTypeOCIManifest, MediaTypeDockerList, MediaTypeDockerManifest, MediaTypeOCIArtifact}
}

// IsIndex reports whether mediaType is an image index (OCI index or Docker
// manifest list).
func IsIndex(mediaType string) bool {
	return mediaType == MediaTypeOCIIndex || mediaType == MediaTypeDockerList
}

// TakesIndex reports whether a client with this Accept list can take an
// index: the list is empty, holds */*, or names an index type.
func TakesIndex(accept []string) bool {
	if len(accept) == 0 {
		return true
	}
	for _, a := range accept {
		if a == "*/*" || IsIndex(a) {
			return true
		}
	}
	return false
}

// RemoteBlob is a blob body opened at an origin. The caller closes Body
// and verifies the digest while reading.
type RemoteBlob struct {
	Body   io.ReadCloser
	Offset int64 // where Body starts: 0 when the origin ignored the offset
	Size   int64 // the whole blob's size, -1 if unknown
}

// RateLimit is an origin's last word on its pull budget (Docker Hub's
// ratelimit-limit and ratelimit-remaining headers: a count and a window).
type RateLimit struct {
	Limit     int
	Remaining int
	Window    time.Duration
	Seen      time.Time // when the reading arrived (the reader's clock)
}

// ErrNoReferrersAPI means an origin does not serve the referrers API
// (distribution 2.8 answers 404): callers fall back to the referrers tag
// schema (the tag <alg>-<hex>). Errors wrapping it also wrap
// ocierr.ManifestUnknown or NAME_UNKNOWN.
var ErrNoReferrersAPI = errors.New("origin has no referrers API")

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
