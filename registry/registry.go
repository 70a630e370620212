package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-mirror/cairn/internal/oci"
	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/internal/route"
)

// Puller reads content local-first. Implementations are safe for concurrent
// use; errors wrap ocierr codes (an error without one is answered with 500).
type Puller interface {
	// Manifest resolves a tag or digest; accept lists the media types the
	// client takes (empty: any).
	Manifest(ctx context.Context, repo route.Repo, ref string, accept []string) (oci.Manifest, error)
	// StatBlob describes a blob without reading it.
	StatBlob(ctx context.Context, repo route.Repo, digest string) (oci.Descriptor, error)
	// OpenBlob opens a blob; the caller closes it.
	OpenBlob(ctx context.Context, repo route.Repo, digest string) (oci.Blob, error)
	// Tags lists up to n tags after last (n <= 0: all); more reports a
	// further page.
	Tags(ctx context.Context, repo route.Repo, n int, last string) (tags []string, more bool, err error)
}

// Handler serves the OCI Distribution API. Safe for concurrent use.
type Handler struct {
	router  *route.Router
	puller  Puller
	authz   Authorizer
	pusher  Uploader // nil: pull-only
	deletes map[string]Deletes
	log     *slog.Logger
	reg     prometheus.Registerer
	metrics *metrics
}

// Option configures a Handler.
type Option func(*Handler)

// WithLogger sets the logger for access lines and errors (default: discard).
func WithLogger(l *slog.Logger) Option { return func(h *Handler) { h.log = l } }

// WithRegisterer registers the HTTP metrics (default: not registered).
func WithRegisterer(reg prometheus.Registerer) Option { return func(h *Handler) { h.reg = reg } }

// WithAuthorizer sets who may do what (default: anonymous pulls only).
func WithAuthorizer(a Authorizer) Option { return func(h *Handler) { h.authz = a } }

// WithPusher serves blob uploads, and manifest pushes if p is also a
// ManifestPusher (default: none, the node is pull-only).
func WithPusher(p Uploader) Option { return func(h *Handler) { h.pusher = p } }

// New returns the API handler.
func New(router *route.Router, p Puller, opts ...Option) (*Handler, error) {
	if router == nil || p == nil {
		return nil, errors.New("registry: a router and a puller are required")
	}
	h := &Handler{router: router, puller: p, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(h)
	}
	if h.authz == nil {
		h.authz = pullOnly{}
	}
	m, err := newMetrics(h.reg)
	if err != nil {
		return nil, fmt.Errorf("registry: metrics: %w", err)
	}
	h.metrics = m
	return h, nil
}

// apiVersion is sent on every response; never modified.
var apiVersion = []string{"registry/2.0"}

// nsParam is containerd's ?ns=<registry>, without parsing an empty query.
func nsParam(r *http.Request) string {
	if r.URL.RawQuery == "" {
		return ""
	}
	return r.URL.Query().Get("ns")
}

// request is what one API call has learnt about itself, for the handlers,
// the access line and the metrics.
type request struct {
	path route.Path
	repo route.Repo
	user string // authenticated user, "" for anonymous
}

// ServeHTTP is the adapter: handlers return errors, rendered here once.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &responseWriter{ResponseWriter: w}
	rw.Header()["Docker-Distribution-Api-Version"] = apiVersion
	var req request
	err := h.serve(rw, r, &req)
	if err != nil {
		h.writeError(rw, r, err)
	}
	h.finish(rw, r, &req, start, err)
}

func (h *Handler) serve(w *responseWriter, r *http.Request, req *request) error {
	p, err := route.ParsePath(r.URL.Path)
	if err != nil {
		return err
	}
	req.path = p
	if p.Kind == route.KindBase {
		if err := h.authorize(r, req, ActionPull); err != nil {
			return err
		}
		return h.base(w, r)
	}
	repo, err := h.router.Resolve(p.Name, nsParam(r))
	if err != nil {
		return err
	}
	req.repo = repo
	w.Header()["Oci-Namespace"] = []string{repo.Namespace}
	return h.dispatch(w, r, req)
}

// handlerFunc is one endpoint's handler.
type handlerFunc func(w *responseWriter, r *http.Request, req *request) error

func (h *Handler) dispatch(w *responseWriter, r *http.Request, req *request) error {
	action, handle, err := h.endpoint(r, req)
	if err != nil {
		return err
	}
	if err := h.authorize(r, req, action); err != nil {
		return err
	}
	return handle(w, r, req)
}

// endpoint picks the handler for the request's route and method, and the
// action it needs. Methods an endpoint does not serve are refused before
// authorization.
func (h *Handler) endpoint(r *http.Request, req *request) (Action, handlerFunc, error) {
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	switch k := req.path.Kind; {
	case k == route.KindManifest && read:
		return ActionPull, h.manifest, nil
	case k == route.KindBlob && read:
		return ActionPull, h.blob, nil
	case k == route.KindTags && read:
		return ActionPull, h.tags, nil
	case k == route.KindReferrers && read:
		return ActionPull, h.referrers, nil
	case k == route.KindManifest && r.Method == http.MethodPut && h.manifestPusher() != nil:
		return h.writeAction(req.repo), h.putManifest, nil
	case (k == route.KindManifest || k == route.KindBlob) && r.Method == http.MethodDelete:
		if handle := h.deleteHandler(req); handle != nil {
			return ActionDelete, handle, nil
		}
	case k == route.KindUploads && h.pusher != nil:
		if handle := h.uploadHandler(r.Method, req.path.Reference); handle != nil {
			return h.writeAction(req.repo), handle, nil
		}
	case (k == route.KindUploads || k == route.KindManifest) && h.pusher == nil && !read && r.Method != http.MethodDelete:
		return h.writeAction(req.repo), h.pullOnly, nil
	}
	return 0, nil, fmt.Errorf("%s on %s: %w", r.Method, req.path.Kind, ocierr.Unsupported)
}

// pullOnly answers an authorized write on a node that serves no pushes.
func (h *Handler) pullOnly(_ *responseWriter, r *http.Request, req *request) error {
	return fmt.Errorf("%s %s: this cairn node is pull-only: %w", r.Method, req.path.Kind, ocierr.Unsupported)
}

func (h *Handler) base(w *responseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return fmt.Errorf("%s /v2/: %w", r.Method, ocierr.Unsupported)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write([]byte("{}"))
	}
	return nil
}

// responseWriter records what was sent, for errors, logs and metrics.
type responseWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *responseWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection (flush, deadlines).
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
