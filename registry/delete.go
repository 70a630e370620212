package registry

import (
	"context"
	"fmt"
	"net/http"

	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/internal/route"
)

// Deleter is the optional ability of an Uploader to delete content (the
// spec's content management). Safe for concurrent use; errors wrap ocierr
// codes: ManifestUnknown or BlobUnknown when repo does not hold what is
// named. After a delete returns, reads of what it removed fail with those
// codes (in a mirror namespace, they may fetch it from the upstream again).
type Deleter interface {
	// DeleteTag removes tag from repo; the manifest stays.
	DeleteTag(ctx context.Context, repo route.Repo, tag string) error
	// DeleteManifest removes manifest digest from repo, with repo's tags
	// pointing at it.
	DeleteManifest(ctx context.Context, repo route.Repo, digest string) error
	// DeleteBlob removes blob digest from repo.
	DeleteBlob(ctx context.Context, repo route.Repo, digest string) error
}

// Deletes says which DELETE endpoints a namespace serves; the others
// answer 405 UNSUPPORTED, as the spec allows.
type Deletes struct {
	Tags      bool // DELETE /manifests/<tag>
	Manifests bool // DELETE /manifests/<digest>
	Blobs     bool // DELETE /blobs/<digest>
}

// WithDeletes enables deletes, by namespace name, when the pusher is also
// a Deleter (default: none). The client needs the delete action, and in a
// mirror namespace also replicate: deletes are for content one owns.
func WithDeletes(byNamespace map[string]Deletes) Option {
	return func(h *Handler) { h.deletes = byNamespace }
}

// deleteHandler is the handler of a DELETE on the request's route, nil if
// deletes of that kind are not served in its namespace.
func (h *Handler) deleteHandler(req *request) handlerFunc {
	d, ok := h.pusher.(Deleter)
	if !ok {
		return nil
	}
	on := h.deletes[req.repo.Namespace]
	ref := req.path.Reference
	switch k := req.path.Kind; {
	case k == route.KindManifest && !route.IsDigest(ref) && on.Tags:
		return h.deleting(func(ctx context.Context) error { return d.DeleteTag(ctx, req.repo, ref) })
	case k == route.KindManifest && route.IsDigest(ref) && on.Manifests:
		return h.deleting(func(ctx context.Context) error { return d.DeleteManifest(ctx, req.repo, ref) })
	case k == route.KindBlob && on.Blobs:
		return h.deleting(func(ctx context.Context) error { return d.DeleteBlob(ctx, req.repo, ref) })
	}
	return nil
}

// deleting answers 202 once del succeeds. In a mirror namespace the client
// must also hold replicate.
func (h *Handler) deleting(del func(ctx context.Context) error) handlerFunc {
	return func(w *responseWriter, r *http.Request, req *request) error {
		if h.router.Mirror(req.repo.Namespace) && !h.allowed(r, req.repo, ActionReplicate) {
			return fmt.Errorf("deleting in %s, a mirror namespace, needs replicate as well as delete: %w", req.repo.Canonical(), ocierr.Denied)
		}
		if err := del(r.Context()); err != nil {
			return err
		}
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
}
