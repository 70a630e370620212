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

// New returns the API handler.
func New(router *route.Router, p Puller, opts ...Option) (*Handler, error) {
	if router == nil || p == nil {
		return nil, errors.New("registry: a router and a puller are required")
	}
	h := &Handler{router: router, puller: p, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(h)
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

func (h *Handler) dispatch(w *responseWriter, r *http.Request, req *request) error {
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	switch {
	case req.path.Kind == route.KindManifest && read:
		return h.manifest(w, r, req)
	case req.path.Kind == route.KindBlob && read:
		return h.blob(w, r, req)
	case req.path.Kind == route.KindTags && read:
		return h.tags(w, r, req)
	case req.path.Kind == route.KindReferrers:
		return h.referrers(w, r, req)
	case req.path.Kind == route.KindUploads || !read:
		return fmt.Errorf("%s %s: this cairn node is pull-only: %w", r.Method, req.path.Kind, ocierr.Unsupported)
	}
	return fmt.Errorf("%s on %s: %w", r.Method, req.path.Kind, ocierr.Unsupported)
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
