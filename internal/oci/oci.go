// Package oci holds the small value types that the upstream client, the
// cache and the registry pass along (the registry declares the interfaces,
// the cache implements them, and neither may import the other), so one
// manifest or descriptor type crosses them all without conversion. It
// also holds cairn's one model of a manifest body (Parse, over image-spec's
// types), its one platform matcher and its one digest computation. It
// imports nothing from the project.
package oci

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	specs "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types cairn knows for manifests, from go-containerregistry's types
// where it has them.
const (
	MediaTypeOCIIndex       = string(types.OCIImageIndex)
	MediaTypeOCIManifest    = string(types.OCIManifestSchema1)
	MediaTypeDockerList     = string(types.DockerManifestList)
	MediaTypeDockerManifest = string(types.DockerManifestSchema2)
	MediaTypeDockerSchema1  = string(types.DockerManifestSchema1Signed)
	// MediaTypeOCIArtifact is image-spec 1.1.0-rc's artifact manifest,
	// dropped before 1.1.0 and so in neither library; some registries
	// still hold such manifests.
	MediaTypeOCIArtifact = "application/vnd.oci.artifact.manifest.v1+json"
	MediaTypeOctetStream = "application/octet-stream"
	MaxManifestBytes     = 4 << 20 // manifests larger than this are refused (413)
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

// Parsed is a manifest body read with image-spec's types: an image
// manifest, an artifact, or an index (whose children are Manifests; an
// index's other fields share the manifest's names). It is cairn's one model
// of a manifest. Parsing checks JSON types only: digests are go-digest
// strings, not validated (cairn takes sha256 and sha512, which
// go-containerregistry's v1.Hash would refuse in part), so a caller that
// relies on a digest checks it with route.ValidDigest.
type Parsed struct {
	specs.Manifest
	Manifests []specs.Descriptor `json:"manifests,omitempty"`
}

// Parse reads a manifest or an index. Its error is encoding/json's, for
// the caller to wrap.
func Parse(body []byte) (Parsed, error) {
	var p Parsed
	if err := json.Unmarshal(body, &p); err != nil {
		return Parsed{}, err
	}
	return p, nil
}

// Blobs are the blobs an image manifest names, in order: its config (if it
// has one: an index or an artifact may not) and its layers.
func (p Parsed) Blobs() []specs.Descriptor {
	out := make([]specs.Descriptor, 0, len(p.Layers)+1)
	if p.Config.Digest != "" {
		out = append(out, p.Config)
	}
	return append(out, p.Layers...)
}

// Names are the digests the body names, unvalidated and in order: its
// config (if set), layers, children, and subject (if any).
func (p Parsed) Names() []string {
	out := make([]string, 0, len(p.Layers)+len(p.Manifests)+2)
	for _, d := range append(p.Blobs(), p.Manifests...) {
		out = append(out, d.Digest.String())
	}
	if p.Subject != nil {
		out = append(out, p.Subject.Digest.String())
	}
	return out
}

// SubjectDigest is the digest of the manifest's subject, "" without one.
func (p Parsed) SubjectDigest() string {
	if p.Subject == nil {
		return ""
	}
	return p.Subject.Digest.String()
}

// ChildFor is the index's first child for platform want (see
// PlatformSatisfies); false if there is none.
func (p Parsed) ChildFor(want v1.Platform) (Descriptor, bool) {
	for _, d := range p.Manifests {
		if PlatformSatisfies(d.Platform, want) {
			return DescriptorOf(d), true
		}
	}
	return Descriptor{}, false
}

// DescriptorOf is the media type, digest and size of an image-spec
// descriptor.
func DescriptorOf(d specs.Descriptor) Descriptor {
	return Descriptor{MediaType: d.MediaType, Digest: d.Digest.String(), Size: d.Size}
}

// ParsePlatform reads "os/arch" or "os/arch/variant" (go-containerregistry's
// grammar, so an ":osversion" suffix too); os and arch are required.
func ParsePlatform(s string) (v1.Platform, error) {
	p, err := v1.ParsePlatform(s)
	if err != nil || p.OS == "" || p.Architecture == "" {
		return v1.Platform{}, fmt.Errorf("platform %q: want os/arch or os/arch/variant", s)
	}
	return *p, nil
}

// PlatformSatisfies reports whether p, an index child's platform (nil if
// it states none), is one want names: the same os and architecture, and
// the same variant, os version and os features where want sets them (so a
// want without a variant takes every variant). It is
// go-containerregistry's v1.Platform.Satisfies. A child without a
// platform satisfies nothing; whether to keep it is the caller's choice.
func PlatformSatisfies(p *specs.Platform, want v1.Platform) bool {
	if p == nil {
		return false
	}
	have := v1.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant, OSVersion: p.OSVersion, OSFeatures: p.OSFeatures}
	return have.Satisfies(want)
}

// DigestOf is body's digest with algorithm alg: sha512 for "sha512",
// sha256 for anything else ("" included). It hashes with the standard
// library rather than go-digest's Algorithm.FromBytes, which gives the
// same string but took a third longer on a 1 KiB manifest (a heap hash and
// two fmt.Sprintf: 7 allocations against 3).
func DigestOf(body []byte, alg string) string {
	if alg == "sha512" {
		sum := sha512.Sum512(body)
		return "sha512:" + hex.EncodeToString(sum[:])
	}
	sum := sha256.Sum256(body)
	return "sha256:" + hex.EncodeToString(sum[:])
}
