package route

import (
	"fmt"
	"strings"

	"github.com/cairn-mirror/cairn/internal/ocierr"
)

// Kind is the kind of API endpoint a path names.
type Kind int

// The endpoints of the OCI Distribution API.
const (
	KindBase      Kind = iota + 1 // /v2/
	KindManifest                  // /v2/<name>/manifests/<reference>
	KindBlob                      // /v2/<name>/blobs/<digest>
	KindTags                      // /v2/<name>/tags/list
	KindReferrers                 // /v2/<name>/referrers/<digest>
	KindUploads                   // /v2/<name>/blobs/uploads/ and /v2/<name>/blobs/uploads/<id>
)

// String is the route kind's label in logs and metrics.
func (k Kind) String() string {
	switch k {
	case KindBase:
		return "base"
	case KindManifest:
		return "manifest"
	case KindBlob:
		return "blob"
	case KindTags:
		return "tags"
	case KindReferrers:
		return "referrers"
	case KindUploads:
		return "uploads"
	default:
		return "unknown"
	}
}

// Path is a parsed API path. Name is the repository name as the client sent
// it (it may start with a namespace host); Reference is a tag or a digest
// for manifests, a digest for blobs and referrers, an upload id (maybe
// empty) for uploads.
type Path struct {
	Kind      Kind
	Name      string
	Reference string
}

// maxNameLen bounds a repository name, as distribution does (255), plus room
// for a leading namespace host.
const maxNameLen = 255 + 256

// ParsePath parses the decoded URL path of an API request. Errors wrap
// ocierr.NameInvalid, ocierr.DigestInvalid, ocierr.ManifestInvalid (a bad
// tag) or ocierr.NameUnknown (a path that is no API endpoint).
func ParsePath(p string) (Path, error) {
	if p == "/v2/" || p == "/v2" {
		return Path{Kind: KindBase}, nil
	}
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return Path{}, fmt.Errorf("%q is not an API path: %w", p, ocierr.NameUnknown)
	}
	parts := strings.Split(rest, "/")
	path, n, err := parseTail(parts)
	if err != nil {
		return Path{}, err
	}
	path.Name = strings.Join(parts[:len(parts)-n], "/")
	if err := ValidName(path.Name); err != nil {
		return Path{}, err
	}
	return path, nil
}

// parseTail reads the endpoint from the end of the path and returns how
// many components it used.
func parseTail(parts []string) (Path, int, error) {
	n := len(parts)
	last := parts[n-1]
	switch {
	case n >= 4 && parts[n-3] == "blobs" && parts[n-2] == "uploads":
		return Path{Kind: KindUploads, Reference: last}, 3, validUploadID(last)
	case n >= 2 && parts[n-2] == "manifests":
		return Path{Kind: KindManifest, Reference: last}, 2, ValidReference(last)
	case n >= 2 && parts[n-2] == "blobs":
		return Path{Kind: KindBlob, Reference: last}, 2, ValidDigest(last)
	case n >= 2 && parts[n-2] == "referrers":
		return Path{Kind: KindReferrers, Reference: last}, 2, ValidDigest(last)
	case n >= 2 && parts[n-2] == "tags" && last == "list":
		return Path{Kind: KindTags}, 2, nil
	}
	return Path{}, 0, fmt.Errorf("no API endpoint at /v2/%s: %w", strings.Join(parts, "/"), ocierr.NameUnknown)
}

func validUploadID(id string) error {
	if len(id) > 128 {
		return fmt.Errorf("upload id too long: %w", ocierr.BlobUploadUnknown)
	}
	for i := 0; i < len(id); i++ {
		if !isAlnum(id[i]) && id[i] != '-' && id[i] != '_' && id[i] != '.' {
			return fmt.Errorf("upload id %q: %w", id, ocierr.BlobUploadUnknown)
		}
	}
	return nil
}
