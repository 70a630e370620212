package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cairn-mirror/cairn/internal/oci"
	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/internal/route"
	"github.com/cairn-mirror/cairn/storage"
)

// Pushes: blob upload sessions (over storage's), mounts and manifests. The
// registry has checked that the client may write into the repository.

// sourcePush marks tag records written by a push: authoritative, never
// revalidated against an upstream.
const sourcePush = "push"

// StartUpload opens a durable upload session in repo for user ("" for
// anonymous). Past the session limits it is TOOMANYREQUESTS and nothing is
// created.
func (c *Cache) StartUpload(_ context.Context, repo route.Repo, user string) (string, error) {
	if _, err := c.namespace(repo.Namespace); err != nil {
		return "", err
	}
	lim := storage.UploadLimits{Sessions: c.uploads.Sessions, PerUser: c.uploads.SessionsPerUser}
	u, err := c.store.NewUpload(repo.Namespace, repo.Name, user, lim)
	if errors.Is(err, storage.ErrTooManyUploads) {
		return "", fmt.Errorf("%w: %w", err, ocierr.TooManyRequests)
	}
	if err != nil {
		return "", err
	}
	return u.ID, nil
}

// session returns upload id if it belongs to repo; BLOB_UPLOAD_UNKNOWN
// otherwise, so that one repository cannot reach another's uploads.
func (c *Cache) session(repo route.Repo, id string) (storage.Upload, error) {
	u, err := c.store.UploadStatus(id)
	if errors.Is(err, storage.ErrUploadUnknown) || (err == nil && (u.Namespace != repo.Namespace || u.Repo != repo.Name)) {
		return storage.Upload{}, fmt.Errorf("upload %s in %s: %w", id, repo.Canonical(), ocierr.BlobUploadUnknown)
	}
	return u, err
}

// uploadErr maps storage's upload errors to the spec's codes.
func uploadErr(id string, err error) error {
	switch {
	case errors.Is(err, storage.ErrUploadUnknown):
		return fmt.Errorf("upload %s: %w", id, ocierr.BlobUploadUnknown)
	case errors.Is(err, storage.ErrUploadOffset):
		return fmt.Errorf("%w: %w", err, ocierr.RangeInvalid)
	case errors.Is(err, storage.ErrDigestMismatch), errors.Is(err, storage.ErrInvalidDigest):
		return fmt.Errorf("%w: %w", err, ocierr.DigestInvalid)
	}
	return err
}

// AppendUpload appends body, of length bytes (-1: unknown), at offset;
// on a mismatch the size returned is the session's. An append that would
// take the session past the upload size cap ends the session, refused
// with SIZE_INVALID (413): before reading a byte when length says so,
// else once the body passes the cap (keeping nothing of it).
func (c *Cache) AppendUpload(_ context.Context, repo route.Repo, id string, offset, length int64, body io.Reader) (int64, error) {
	u, err := c.session(repo, id)
	if err != nil {
		return 0, err
	}
	if limit := c.uploads.MaxSize; limit > 0 {
		room := limit - offset
		if room < 0 || length > room {
			return u.Offset, c.tooLarge(id, limit)
		}
		body = &cappedReader{r: body, left: room}
	}
	u, err = c.store.AppendUpload(id, offset, body)
	if errors.Is(err, errTooLarge) {
		return u.Offset, c.tooLarge(id, c.uploads.MaxSize)
	}
	return u.Offset, uploadErr(id, err)
}

// tooLarge ends session id, which would pass limit bytes, and returns the
// refusal: SIZE_INVALID, the spec's code for a blob length it cannot take
// (it has none for "too large"), with 413 so that clients do not retry.
func (c *Cache) tooLarge(id string, limit int64) error {
	err := fmt.Errorf("upload %s: the blob would pass the upload size cap of %d bytes, session ended: %w", id, limit, ocierr.SizeInvalid)
	if cerr := c.store.CancelUpload(id); cerr != nil && !errors.Is(cerr, storage.ErrUploadUnknown) {
		c.log.Warn("ending an oversized upload session", "upload", id, "err", cerr)
	}
	return ocierr.WithStatus(err, http.StatusRequestEntityTooLarge)
}

// errTooLarge is a cappedReader's error past its cap.
var errTooLarge = errors.New("upload body past the size cap")

// cappedReader reads at most left bytes of r; one more is errTooLarge.
type cappedReader struct {
	r    io.Reader
	left int64
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	if int64(n) > c.left {
		n, c.left = int(c.left), -1
		return n, errTooLarge
	}
	c.left -= int64(n)
	return n, err
}

// UploadStatus returns the bytes the session holds.
func (c *Cache) UploadStatus(_ context.Context, repo route.Repo, id string) (int64, error) {
	u, err := c.session(repo, id)
	return u.Offset, err
}

// CommitUpload publishes the session as digest, linked to and pinned in repo.
func (c *Cache) CommitUpload(_ context.Context, repo route.Repo, id, digest string) (oci.Descriptor, error) {
	if _, err := c.session(repo, id); err != nil {
		return oci.Descriptor{}, err
	}
	info, err := c.store.CommitUpload(id, digest, storage.KindUnknown, "")
	if err != nil {
		return oci.Descriptor{}, uploadErr(id, err)
	}
	c.committed()
	return oci.Descriptor{MediaType: oci.MediaTypeOctetStream, Digest: digest, Size: info.Size}, nil
}

// CancelUpload ends the session.
func (c *Cache) CancelUpload(_ context.Context, repo route.Repo, id string) error {
	if _, err := c.session(repo, id); err != nil {
		return err
	}
	return uploadErr(id, c.store.CancelUpload(id))
}

// MountBlob links digest into repo if from holds it (linked there, or
// shared and from has no credentials); BLOB_UNKNOWN otherwise. The mounted
// blob is pinned as pushed content.
func (c *Cache) MountBlob(_ context.Context, repo, from route.Repo, digest string) (oci.Descriptor, error) {
	fromNS, err := c.namespace(from.Namespace)
	if err != nil {
		return oci.Descriptor{}, err
	}
	info, held, err := c.heldBy(fromNS, from, digest)
	if err != nil {
		return oci.Descriptor{}, err
	}
	if !held {
		return oci.Descriptor{}, unknown(digest, from, false)
	}
	if err := c.linkPushed(repo, digest); err != nil {
		return oci.Descriptor{}, err
	}
	return oci.Descriptor{MediaType: oci.MediaTypeOctetStream, Digest: digest, Size: info.Size}, nil
}

// BlobHolders returns the repositories of configured namespaces linked
// to digest (pushed, mounted, served or confirmed), at most
// storage.MaxLinkHolders of them: the candidates of an anonymous mount,
// which the registry filters by what the client may pull. It reads the
// digest's own links, through storage's digest -> repositories index.
func (c *Cache) BlobHolders(_ context.Context, digest string) ([]route.Repo, error) {
	hs, err := c.store.LinkHolders(digest)
	if err != nil {
		return nil, err
	}
	out := make([]route.Repo, 0, len(hs))
	for _, h := range hs {
		if _, err := c.namespace(h.Namespace); err == nil {
			out = append(out, route.Repo{Namespace: h.Namespace, Name: h.Repo, Sent: h.Namespace + "/" + h.Repo})
		}
	}
	return out, nil
}

// heldBy reports whether repo may read the stored digest without asking an
// upstream: linked to it, or shared in a namespace without credentials.
func (c *Cache) heldBy(ns *Namespace, repo route.Repo, digest string) (storage.BlobInfo, bool, error) {
	info, err := c.store.Stat(digest)
	if errors.Is(err, storage.ErrNotFound) {
		return info, false, nil
	}
	if err != nil {
		return info, false, err
	}
	if !ns.Private && ns.Origin != nil && info.Shared {
		return info, true, nil
	}
	linked, err := c.store.Linked(repo.Namespace, repo.Name, digest)
	return info, linked, err
}

// linkPushed links digest to repo as pushed and pins it.
func (c *Cache) linkPushed(repo route.Repo, digest string) error {
	if err := c.store.Link(repo.Namespace, repo.Name, digest, storage.LinkPushed); err != nil {
		return err
	}
	return c.store.Pin(digest, storage.PushPinReason)
}

// PutManifest stores a pushed manifest in repo, checks that repo holds
// what it names (an index's children may be absent if absentChildren),
// links and pins it, and points tag at it (source push) when tag is set.
func (c *Cache) PutManifest(_ context.Context, repo route.Repo, tag string, m oci.Manifest, absentChildren bool) error {
	ns, err := c.namespace(repo.Namespace)
	if err != nil {
		return err
	}
	pj, err := oci.Parse(m.Body)
	if err != nil {
		return fmt.Errorf("manifest %s: %v: %w", m.Digest, err, ocierr.ManifestInvalid)
	}
	if !oci.IsIndex(m.MediaType) && (m.MediaType == oci.MediaTypeOCIManifest || m.MediaType == oci.MediaTypeDockerManifest) && pj.Config.Digest == "" {
		return fmt.Errorf("manifest %s: an image manifest without a config: %w", m.Digest, ocierr.ManifestInvalid)
	}
	required, optional := pushedChildren(pj, absentChildren)
	present, err := c.children(ns, repo, m.Digest, required, true)
	if err != nil {
		return err
	}
	more, err := c.children(ns, repo, m.Digest, optional, false)
	if err != nil {
		return err
	}
	present = append(present, more...)
	if _, err := c.store.PutManifest(m.Digest, m.MediaType, m.Body, storage.ManifestWrite{Namespace: repo.Namespace, Repo: repo.Name, Cause: storage.CausePush}); err != nil {
		return fmt.Errorf("manifest %s: %w", m.Digest, uploadErr("", err))
	}
	c.committed()
	for _, d := range append(present, m.Digest) {
		if err := c.linkPushed(repo, d); err != nil {
			return err
		}
	}
	c.inheritPins(m.Digest)
	c.remember(m)
	if err := c.recordReferrer(repo, m, pj); err != nil {
		return err
	}
	if tag == "" {
		return nil
	}
	_, err = c.store.PutTag(repo.Namespace, repo.Name, tag, storage.TagRecord{
		Digest: m.Digest, MediaType: m.MediaType, Source: sourcePush, CheckedAt: c.now(),
	})
	if err == nil {
		c.pinByRules(repo, tag, m.Digest)
	}
	return err
}

// pushedChildren lists what a manifest names that must be held, and what
// may be absent: an index's children, when allowed.
func pushedChildren(pj oci.Parsed, absentChildren bool) (required, optional []string) {
	if pj.Config.Digest != "" {
		required = append(required, pj.Config.Digest.String())
	}
	for _, l := range pj.Layers {
		if foreign(l) {
			optional = append(optional, l.Digest.String())
		} else {
			required = append(required, l.Digest.String())
		}
	}
	for _, m := range pj.Manifests {
		if absentChildren {
			optional = append(optional, m.Digest.String())
		} else {
			required = append(required, m.Digest.String())
		}
	}
	return required, optional
}

// foreign reports whether a layer may be absent from the registry: a
// non-distributable layer (image-spec 1.0's foreign layers) with URLs to
// fetch it from elsewhere, as distribution accepts it.
func foreign(l specs.Descriptor) bool {
	return len(l.URLs) > 0 && (strings.Contains(l.MediaType, ".nondistributable.") || strings.Contains(l.MediaType, ".foreign."))
}

// recordReferrer lists a pushed manifest that has a subject among the
// subject's referrers in repo, and forgets referrers answers held for it.
func (c *Cache) recordReferrer(repo route.Repo, m oci.Manifest, pj oci.Parsed) error {
	subject := pj.SubjectDigest()
	if subject == "" || route.ValidDigest(subject) != nil {
		return nil
	}
	at := pj.ArtifactType
	if at == "" && pj.Config.Digest != "" && !oci.IsIndex(m.MediaType) {
		at = pj.Config.MediaType // image-spec: an image's artifact type defaults to its config's
	}
	desc, err := json.Marshal(specs.Descriptor{MediaType: m.MediaType, Digest: digest.Digest(m.Digest), Size: m.Size, ArtifactType: at, Annotations: pj.Annotations})
	if err != nil {
		return err
	}
	if err := c.store.PutReferrer(repo.Namespace, repo.Name, subject, m.Digest, desc); err != nil {
		return err
	}
	c.dropReferrers(repo, subject)
	return nil
}

// children returns which of digests repo holds; if must, one it does not
// hold is MANIFEST_BLOB_UNKNOWN.
func (c *Cache) children(ns *Namespace, repo route.Repo, parent string, digests []string, must bool) ([]string, error) {
	var held []string
	for _, d := range digests {
		if err := route.ValidDigest(d); err != nil {
			return nil, fmt.Errorf("manifest %s: %v: %w", parent, err, ocierr.ManifestInvalid)
		}
		_, ok, err := c.heldBy(ns, repo, d)
		switch {
		case err != nil:
			return nil, err
		case ok:
			held = append(held, d)
		case must:
			return nil, fmt.Errorf("manifest %s names %s, which %s does not hold: %w", parent, d, repo.Canonical(), ocierr.ManifestBlobUnknown)
		}
	}
	return held, nil
}

// DefaultUploadExpiry is how long an upload session may sit idle (no
// append) before ExpireUploads ends it: a day, as distribution's default
// upload purging, long enough to resume after a node restart.
const DefaultUploadExpiry = 24 * time.Hour

// uploadSweepEvery is how often KeepUploads looks for idle sessions.
const uploadSweepEvery = time.Hour

// WithUploadExpiry sets how long an idle upload session lives (default
// DefaultUploadExpiry).
func WithUploadExpiry(d time.Duration) Option { return func(c *Cache) { c.uploadExpiry = d } }

// UploadLimits bounds pushes. A zero field is no bound (the default).
type UploadLimits struct {
	// MaxSize caps one blob upload: a monolithic one, or the sum of its
	// chunks.
	MaxSize int64
	// Sessions caps the node's open upload sessions, SessionsPerUser
	// those of one user (anonymous clients count as one user, "").
	Sessions, SessionsPerUser int
}

// WithUploadLimits sets the upload bounds (default: none).
func WithUploadLimits(l UploadLimits) Option { return func(c *Cache) { c.uploads = l } }

// ExpireUploads ends the upload sessions idle for longer than the upload
// expiry, and returns how many it ended.
func (c *Cache) ExpireUploads() (int, error) {
	return c.store.ExpireUploads(c.now().Add(-c.uploadExpiry))
}

// KeepUploads ends idle upload sessions every hour until ctx ends.
func (c *Cache) KeepUploads(ctx context.Context) error {
	tick := time.NewTicker(uploadSweepEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if n, err := c.ExpireUploads(); err != nil {
			c.log.Warn("expiring upload sessions", "err", err)
		} else if n > 0 {
			c.log.Info("expired idle upload sessions", "uploads", n)
		}
	}
}
