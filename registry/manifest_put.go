package registry

import (
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/cairn-mirror/cairn/internal/oci"
	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/internal/route"
)

// MaxManifestSize is the largest manifest body a push may send.
const MaxManifestSize = 4 << 20

// ManifestPusher is the optional ability of an Uploader to store pushed
// manifests. Safe for concurrent use; errors wrap ocierr codes.
type ManifestPusher interface {
	// PutManifest stores m (its digest computed from its body by the
	// caller) in repo, and points tag at it when tag is not empty. An
	// image manifest's config and layers must be held by repo
	// (ocierr.ManifestBlobUnknown); an index's children too, unless
	// absentChildren. The manifest is pinned; a tag written here is never
	// revalidated upstream.
	PutManifest(ctx context.Context, repo route.Repo, tag string, m oci.Manifest, absentChildren bool) error
}

func (h *Handler) manifestPusher() ManifestPusher {
	mp, _ := h.pusher.(ManifestPusher)
	return mp
}

// putManifest is PUT /manifests/<tag or digest>.
func (h *Handler) putManifest(w *responseWriter, r *http.Request, req *request) error {
	if r.ContentLength > MaxManifestSize {
		return ocierr.WithStatus(fmt.Errorf("manifest of %d bytes, over the %d limit: %w", r.ContentLength, MaxManifestSize, ocierr.ManifestInvalid), http.StatusRequestEntityTooLarge)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxManifestSize+1))
	if err != nil {
		return fmt.Errorf("reading manifest: %w", err)
	}
	if len(body) > MaxManifestSize {
		return ocierr.WithStatus(fmt.Errorf("manifest over the %d byte limit: %w", MaxManifestSize, ocierr.ManifestInvalid), http.StatusRequestEntityTooLarge)
	}
	ref := req.path.Reference
	m, subject, err := parsePushedManifest(r.Header.Get("Content-Type"), body, ref)
	if err != nil {
		return err
	}
	tag := ""
	if !route.IsDigest(ref) {
		tag = ref
	}
	absent := h.allowed(r, req.repo, ActionReplicate)
	if err := h.manifestPusher().PutManifest(r.Context(), req.repo, tag, m, absent); err != nil {
		return err
	}
	hdr := w.Header()
	hdr.Set("Location", location(r, req, "manifests/"+m.Digest))
	hdr.Set("Docker-Content-Digest", m.Digest)
	if subject != "" {
		hdr.Set("OCI-Subject", subject)
	}
	hdr.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// parsePushedManifest checks a pushed body: JSON, a media type (from
// Content-Type, else the body's mediaType) that agrees with the body's, and
// a digest that matches ref when ref is one. It returns the manifest and
// its subject's digest, if any.
func parsePushedManifest(contentType string, body []byte, ref string) (oci.Manifest, string, error) {
	pm, err := oci.Parse(body)
	if err != nil {
		return oci.Manifest{}, "", fmt.Errorf("manifest is not valid manifest JSON: %v: %w", err, ocierr.ManifestInvalid)
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	switch {
	case mt == "" || mt == oci.MediaTypeOctetStream:
		mt = pm.MediaType
	case pm.MediaType != "" && pm.MediaType != mt:
		return oci.Manifest{}, "", fmt.Errorf("manifest sent as %s, but it says it is %s: %w", mt, pm.MediaType, ocierr.ManifestInvalid)
	}
	if mt == "" {
		return oci.Manifest{}, "", fmt.Errorf("manifest media type unknown: send Content-Type: %w", ocierr.ManifestInvalid)
	}
	dgst := oci.DigestOf(body, "sha256")
	if route.IsDigest(ref) {
		alg, _, _ := strings.Cut(ref, ":")
		if dgst = oci.DigestOf(body, alg); dgst != ref {
			return oci.Manifest{}, "", fmt.Errorf("manifest pushed as %s hashes to %s: %w", ref, dgst, ocierr.DigestInvalid)
		}
	}
	subject := pm.SubjectDigest()
	if route.ValidDigest(subject) != nil {
		subject = ""
	}
	m := oci.Manifest{Descriptor: oci.Descriptor{MediaType: mt, Digest: dgst, Size: int64(len(body))}, Body: body}
	return m, subject, nil
}
