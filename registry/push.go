package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/cairn-mirror/cairn/internal/oci"
	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/internal/route"
)

// Uploader keeps blob upload sessions. An upload belongs to the
// repository it was started in: a call naming another repository's upload
// fails with ocierr.BlobUploadUnknown, as does an unknown, finished or
// expired one. Sessions survive restarts. Implementations are safe for
// concurrent use; operations on one session are serialised. Errors wrap
// ocierr codes.
type Uploader interface {
	// StartUpload opens a session in repo for user (the authenticated
	// pusher, "" for anonymous) and returns its ID (URL-safe). Past a
	// limit on open sessions the error wraps ocierr.TooManyRequests and
	// nothing is created.
	StartUpload(ctx context.Context, repo route.Repo, user string) (id string, err error)
	// AppendUpload appends body, of length bytes (-1: unknown, as
	// Content-Length), to the session, which must hold exactly offset
	// bytes, and returns how many it holds after. On an offset mismatch
	// the error wraps ocierr.RangeInvalid and size is the session's
	// current size. A failed append keeps nothing of body. An append
	// that would pass the upload size cap wraps ocierr.SizeInvalid and
	// ends the session; one whose length says so reads nothing of body.
	AppendUpload(ctx context.Context, repo route.Repo, id string, offset, length int64, body io.Reader) (size int64, err error)
	// UploadStatus returns how many bytes the session holds.
	UploadStatus(ctx context.Context, repo route.Repo, id string) (size int64, err error)
	// CommitUpload verifies the session's bytes against digest
	// (ocierr.DigestInvalid, the session kept) and publishes them as a
	// blob of repo, ending the session.
	CommitUpload(ctx context.Context, repo route.Repo, id, digest string) (oci.Descriptor, error)
	// CancelUpload ends the session and drops its bytes.
	CancelUpload(ctx context.Context, repo route.Repo, id string) error
}

// Mounter is the optional ability of an Uploader to link a blob that repo
// from holds into repo without an upload (POST ?mount=&from=). The caller
// has checked that the client may pull from. An error wrapping
// ocierr.BlobUnknown means the blob cannot be mounted: the client uploads
// it instead.
type Mounter interface {
	MountBlob(ctx context.Context, repo, from route.Repo, digest string) (oci.Descriptor, error)
}

// BlobHolders is the optional ability of a Mounter to name the
// repositories that hold a blob, for an anonymous mount (POST ?mount=
// without from=): the registry tries those the client may pull, in order.
// The list may be bounded (a blob held in many repositories names only
// some); an unknown digest gives none. Safe for concurrent use; it may
// scan every link record, so it is called once per anonymous mount.
type BlobHolders interface {
	BlobHolders(ctx context.Context, digest string) ([]route.Repo, error)
}

// uploadHandler is the handler for method on an upload route, nil if the
// route does not serve it. id is "" for /blobs/uploads/.
func (h *Handler) uploadHandler(method, id string) handlerFunc {
	switch {
	case id == "" && method == http.MethodPost:
		return h.startUpload
	case id == "":
		return nil
	case method == http.MethodGet:
		return h.uploadStatus
	case method == http.MethodPatch:
		return h.patchUpload
	case method == http.MethodPut:
		return h.putUpload
	case method == http.MethodDelete:
		return h.cancelUpload
	}
	return nil
}

// location is an API path in the name the client sent, keeping its ?ns=.
func location(r *http.Request, req *request, tail string) string {
	loc := "/v2/" + req.repo.Sent + "/" + tail
	if ns := nsParam(r); ns != "" {
		loc += "?ns=" + url.QueryEscape(ns)
	}
	return loc
}

// uploadRange is the Range header of a session holding size bytes: the
// spec's inclusive "0-<last>", "0-0" when empty.
func uploadRange(size int64) string { return "0-" + strconv.FormatInt(max(size-1, 0), 10) }

// uploadAccepted answers 202 for a session that continues.
func uploadAccepted(w *responseWriter, r *http.Request, req *request, id string, size int64, status int) error {
	hdr := w.Header()
	hdr.Set("Location", location(r, req, "blobs/uploads/"+id))
	hdr.Set("Docker-Upload-UUID", id)
	hdr.Set("Range", uploadRange(size))
	hdr.Set("Content-Length", "0")
	w.WriteHeader(status)
	return nil
}

// blobCreated answers 201 for a blob now held by the repository.
func blobCreated(w *responseWriter, r *http.Request, req *request, d oci.Descriptor) error {
	hdr := w.Header()
	hdr.Set("Location", location(r, req, "blobs/"+d.Digest))
	hdr.Set("Docker-Content-Digest", d.Digest)
	hdr.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// startUpload is POST /blobs/uploads/: a session, a mount (?mount=&from=,
// or ?mount= alone: from any repository the client may pull) or a
// monolithic upload (?digest= with the whole body).
func (h *Handler) startUpload(w *responseWriter, r *http.Request, req *request) error {
	q := r.URL.Query()
	if dgst := q.Get("mount"); dgst != "" {
		if d, ok := h.mount(r, req, dgst, q.Get("from")); ok {
			return blobCreated(w, r, req, d)
		}
	}
	id, err := h.pusher.StartUpload(r.Context(), req.repo, req.user)
	if err != nil {
		return err
	}
	dgst := q.Get("digest")
	if dgst == "" {
		return uploadAccepted(w, r, req, id, 0, http.StatusAccepted)
	}
	d, err := h.finishUpload(r, req, id, 0, dgst)
	if err != nil {
		_ = h.pusher.CancelUpload(context.WithoutCancel(r.Context()), req.repo, id)
		return err
	}
	return blobCreated(w, r, req, d)
}

// mount links digest from the repository the client named in from=, or,
// without from=, from any repository holding it that the client may pull;
// otherwise (not held, or only where the client may not read it) the
// client uploads.
func (h *Handler) mount(r *http.Request, req *request, dgst, fromName string) (oci.Descriptor, bool) {
	m, ok := h.pusher.(Mounter)
	if !ok || route.ValidDigest(dgst) != nil {
		return oci.Descriptor{}, false
	}
	if fromName == "" {
		return h.mountAnonymous(r, req, m, dgst)
	}
	if route.ValidName(fromName) != nil {
		return oci.Descriptor{}, false
	}
	from, err := h.router.Resolve(fromName, nsParam(r))
	if err != nil || !h.allowed(r, from, ActionPull) {
		return oci.Descriptor{}, false
	}
	d, err := h.mountFrom(r, req, m, from, dgst)
	return d, err == nil
}

// mountAnonymous mounts digest from the first repository holding it that
// the client may pull: never from one it could not have read.
func (h *Handler) mountAnonymous(r *http.Request, req *request, m Mounter, dgst string) (oci.Descriptor, bool) {
	bh, ok := m.(BlobHolders)
	if !ok {
		return oci.Descriptor{}, false
	}
	holders, err := bh.BlobHolders(r.Context(), dgst)
	if err != nil {
		h.log.Warn("finding a blob's repositories failed, asking for an upload", "repo", req.repo.Canonical(), "digest", dgst, "err", err)
		return oci.Descriptor{}, false
	}
	for _, from := range holders {
		if !h.allowed(r, from, ActionPull) {
			continue
		}
		d, err := h.mountFrom(r, req, m, from, dgst)
		if err == nil {
			return d, true
		}
		if !errors.Is(err, ocierr.BlobUnknown) {
			return oci.Descriptor{}, false
		}
	}
	return oci.Descriptor{}, false
}

// mountFrom links digest from from into the request's repository; a
// failure other than BLOB_UNKNOWN is logged.
func (h *Handler) mountFrom(r *http.Request, req *request, m Mounter, from route.Repo, dgst string) (oci.Descriptor, error) {
	d, err := m.MountBlob(r.Context(), req.repo, from, dgst)
	if err != nil && !errors.Is(err, ocierr.BlobUnknown) {
		h.log.Warn("mount failed, asking for an upload", "repo", req.repo.Canonical(), "digest", dgst, "err", err)
	}
	return d, err
}

func (h *Handler) uploadStatus(w *responseWriter, r *http.Request, req *request) error {
	size, err := h.pusher.UploadStatus(r.Context(), req.repo, req.path.Reference)
	if err != nil {
		return err
	}
	return uploadAccepted(w, r, req, req.path.Reference, size, http.StatusNoContent)
}

// patchUpload appends a chunk; its Content-Range, when sent, must start at
// the session's size.
func (h *Handler) patchUpload(w *responseWriter, r *http.Request, req *request) error {
	id := req.path.Reference
	offset, err := h.chunkOffset(r, req)
	if err != nil {
		return h.rangeError(w, r, req, err)
	}
	size, err := h.pusher.AppendUpload(r.Context(), req.repo, id, offset, r.ContentLength, r.Body)
	if err != nil {
		if errors.Is(err, ocierr.RangeInvalid) {
			setUploadHeaders(w, r, req, id, size)
		}
		return err
	}
	return uploadAccepted(w, r, req, id, size, http.StatusAccepted)
}

// chunkOffset is where a chunk starts: its Content-Range's start, else the
// session's current size (a streamed upload).
func (h *Handler) chunkOffset(r *http.Request, req *request) (int64, error) {
	cr := r.Header.Get("Content-Range")
	if cr == "" {
		return h.pusher.UploadStatus(r.Context(), req.repo, req.path.Reference)
	}
	start, end, ok := parseChunkRange(cr)
	if !ok {
		return 0, fmt.Errorf("chunk Content-Range %q is not <start>-<end>: %w", cr, ocierr.RangeInvalid)
	}
	if r.ContentLength >= 0 && r.ContentLength != end-start+1 {
		return 0, fmt.Errorf("chunk Content-Range %q does not match Content-Length %d: %w", cr, r.ContentLength, ocierr.RangeInvalid)
	}
	return start, nil
}

// rangeError answers a bad chunk range with the session's current Range.
func (h *Handler) rangeError(w *responseWriter, r *http.Request, req *request, err error) error {
	if errors.Is(err, ocierr.RangeInvalid) {
		size, serr := h.pusher.UploadStatus(r.Context(), req.repo, req.path.Reference)
		if serr != nil {
			return serr
		}
		setUploadHeaders(w, r, req, req.path.Reference, size)
	}
	return err
}

func setUploadHeaders(w *responseWriter, r *http.Request, req *request, id string, size int64) {
	w.Header().Set("Location", location(r, req, "blobs/uploads/"+id))
	w.Header().Set("Docker-Upload-UUID", id)
	w.Header().Set("Range", uploadRange(size))
}

// parseChunkRange reads "<start>-<end>" (inclusive, as the spec writes a
// chunk's Content-Range; a "bytes " or "bytes=" prefix is tolerated).
func parseChunkRange(s string) (start, end int64, ok bool) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "bytes "), "bytes=")
	a, b, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, false
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, 0, false
	}
	return start, end, true
}

// putUpload ends a session with ?digest=, after appending the final chunk
// the body may carry.
func (h *Handler) putUpload(w *responseWriter, r *http.Request, req *request) error {
	dgst := r.URL.Query().Get("digest")
	if dgst == "" {
		return fmt.Errorf("PUT without ?digest=: %w", ocierr.DigestInvalid)
	}
	offset, err := h.chunkOffset(r, req)
	if err != nil {
		return h.rangeError(w, r, req, err)
	}
	d, err := h.finishUpload(r, req, req.path.Reference, offset, dgst)
	if err != nil {
		return err
	}
	return blobCreated(w, r, req, d)
}

// finishUpload appends the request body, if any, at offset and commits.
func (h *Handler) finishUpload(r *http.Request, req *request, id string, offset int64, dgst string) (oci.Descriptor, error) {
	if err := route.ValidDigest(dgst); err != nil {
		return oci.Descriptor{}, err
	}
	if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
		if _, err := h.pusher.AppendUpload(r.Context(), req.repo, id, offset, r.ContentLength, r.Body); err != nil {
			return oci.Descriptor{}, err
		}
	}
	return h.pusher.CommitUpload(r.Context(), req.repo, id, dgst)
}

func (h *Handler) cancelUpload(w *responseWriter, r *http.Request, req *request) error {
	if err := h.pusher.CancelUpload(r.Context(), req.repo, req.path.Reference); err != nil {
		return err
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
	return nil
}
