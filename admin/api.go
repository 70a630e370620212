package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cairn-mirror/cairn/cache"
	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/internal/route"
	"github.com/cairn-mirror/cairn/storage"
)

// Cache is what the API asks of the node's cache; *cache.Cache is one.
// Its methods are safe for concurrent use. Pin and Unpin take a canonical
// reference (route.PinRule's Raw), may fetch from upstream and block
// until ctx ends; their errors wrap ocierr codes (NAME_INVALID for a ref
// that names no one image, MANIFEST_UNKNOWN, UNAVAILABLE...) or
// storage.ErrNotFound.
type Cache interface {
	Pin(ctx context.Context, ref, reason string) error
	Unpin(ctx context.Context, ref, reason string) error
	// Busy reports a blob being filled or read right now (prune spares it).
	Busy(digest string) bool
	// Stats are the cache's counts since start.
	Stats() cache.Stats
}

// API serves the admin listener: the cache calls, /metrics, /healthz,
// /readyz and /debug/pprof. It is an http.Handler, safe for concurrent
// use.
type API struct {
	store     *storage.Store
	cache     Cache         // nil: no cache calls (pin, unpin refused; stats without since_start)
	router    *route.Router // canonicalises pin refs; set with cache
	capacity  int64         // cache.max_size, 0: no cap
	tokenFile string        // admin.token_file, "": the guarded calls are refused
	metrics   *prometheus.Registry
	ready     func() bool
	log       *slog.Logger
	mux       *http.ServeMux
}

// Option configures New.
type Option func(*API)

// WithCache serves the calls that need the running cache (pin, unpin,
// the counts since start, prune sparing busy blobs). router is the API
// listener's: a pin's reference is canonicalised with it, as a pull's
// name is.
func WithCache(c Cache, router *route.Router) Option {
	return func(a *API) { a.cache, a.router = c, router }
}

// WithCapacity is cache.max_size in bytes (0: no cap), reported by stats.
func WithCapacity(bytes int64) Option { return func(a *API) { a.capacity = bytes } }

// WithTokenFile is admin.token_file: the file whose trimmed content is
// the bearer token of the guarded calls, read on each call. Default: none,
// and the guarded calls are refused (403).
func WithTokenFile(path string) Option { return func(a *API) { a.tokenFile = path } }

// WithMetrics serves reg at /metrics. Default: no /metrics.
func WithMetrics(reg *prometheus.Registry) Option { return func(a *API) { a.metrics = reg } }

// WithReadiness answers /readyz with ready (200 while it reports true,
// 503 otherwise); it must be fast and safe for concurrent use. Default:
// always ready.
func WithReadiness(ready func() bool) Option { return func(a *API) { a.ready = ready } }

// WithLogger logs failed calls and what the mutating ones changed.
// Default: nothing.
func WithLogger(log *slog.Logger) Option { return func(a *API) { a.log = log } }

// New builds the admin API over store (required). A cache needs the
// router (WithCache).
func New(store *storage.Store, opts ...Option) (*API, error) {
	a := &API{store: store, ready: func() bool { return true }, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(a)
	}
	switch {
	case store == nil:
		return nil, errors.New("admin: New needs the store")
	case a.cache != nil && a.router == nil:
		return nil, errors.New("admin: WithCache needs the API's router, to canonicalise pin references")
	case a.capacity < 0:
		return nil, fmt.Errorf("admin: capacity %d is negative", a.capacity)
	}
	a.mux = a.routes()
	return a, nil
}

func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

func (a *API) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET "+PathStats, a.wrap(a.stats))
	mux.Handle("POST "+PathVerify, a.wrap(a.guard(a.verify)))
	mux.Handle("DELETE "+PathBlobs+"{digest}", a.wrap(a.guard(a.remove)))
	mux.Handle("GET "+PathRepos, a.wrap(a.repos))
	mux.Handle("POST "+PathPin, a.wrap(a.guard(a.pin)))
	mux.Handle("POST "+PathUnpin, a.wrap(a.guard(a.unpin)))
	mux.Handle("POST "+PathPrune, a.wrap(a.guard(a.prune)))
	if a.metrics != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(a.metrics, promhttp.HandlerOpts{Registry: a.metrics}))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !a.ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

type handler func(*http.Request) (any, error)

// wrap renders a handler's value as JSON, or its error as ErrorBody with
// the statusError's status (500 for any other error).
func (a *API) wrap(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := h(r)
		status := http.StatusOK
		if err != nil {
			status = http.StatusInternalServerError
			var se *statusError
			if errors.As(err, &se) {
				status = se.status
			}
			v = ErrorBody{Error: err.Error()}
			a.log.Warn("admin call failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	})
}

// guard lets the call through only with Authorization: Bearer <token>,
// token being the trimmed content of admin.token_file, read on each call so
// that it can be rotated without a restart.
func (a *API) guard(h handler) handler {
	return func(r *http.Request) (any, error) {
		if a.tokenFile == "" {
			return nil, &statusError{http.StatusForbidden, "admin.token_file is not set: mutating and expensive admin calls are disabled"}
		}
		want, err := os.ReadFile(a.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("reading admin.token_file: %w", err)
		}
		token := strings.TrimSpace(string(want))
		if token == "" {
			return nil, &statusError{http.StatusForbidden, "admin.token_file is empty: mutating and expensive admin calls are disabled"}
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(token)) != 1 {
			return nil, &statusError{http.StatusUnauthorized, "missing or wrong bearer token"}
		}
		return h(r)
	}
}

func (a *API) stats(*http.Request) (any, error) {
	used, blobs := a.store.Usage()
	capacity := a.capacity
	st := CacheStats{UsedBytes: used, Blobs: blobs, CapacityBytes: &capacity}
	if a.cache != nil {
		st.SinceStart = newSinceStart(a.cache.Stats())
	}
	return st, nil
}

func (a *API) verify(r *http.Request) (any, error) {
	rep, err := a.store.Verify(r.Context())
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	return NewVerifyResult(rep), nil
}

func (a *API) remove(r *http.Request) (any, error) {
	d := r.PathValue("digest")
	if err := RemoveBlob(a.store, d); err != nil {
		return nil, err
	}
	a.log.Info("blob removed by admin call", "digest", d)
	return RemoveResult{Removed: d}, nil
}

func (a *API) repos(*http.Request) (any, error) {
	return ListTags(a.store)
}

func (a *API) pin(r *http.Request) (any, error)   { return a.setPin(r, true) }
func (a *API) unpin(r *http.Request) (any, error) { return a.setPin(r, false) }

// setPin pins or unpins the body's ref, canonicalised by the router,
// under PinReason.
func (a *API) setPin(r *http.Request, pin bool) (any, error) {
	var req RefRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	if a.cache == nil {
		return nil, &statusError{http.StatusServiceUnavailable, "this node has no cache to pin with"}
	}
	rule, err := a.router.PinRule(req.Ref)
	if err == nil && rule.Ref == "" {
		err = fmt.Errorf("pin %q: a glob names repositories; want one image, <namespace>/<repo>:<tag> or @<digest>: %w", req.Ref, ocierr.NameInvalid)
	}
	if err != nil {
		return nil, pinError(req.Ref, err)
	}
	op := a.cache.Unpin
	if pin {
		op = a.cache.Pin
	}
	if err := op(r.Context(), rule.Raw, PinReason); err != nil {
		return nil, pinError(rule.Raw, err)
	}
	a.log.Info("pin changed by admin call", "ref", rule.Raw, "pinned", pin)
	return PinResult{Ref: rule.Raw, Pinned: pin, Reason: PinReason}, nil
}

// pinError maps a pin or unpin failure to a status: a bad ref is 400, an
// unknown namespace, tag or manifest 404, other OCI codes their own status.
func pinError(ref string, err error) error {
	msg := fmt.Sprintf("%s: %v", ref, err)
	if errors.Is(err, storage.ErrNotFound) {
		return &statusError{http.StatusNotFound, msg}
	}
	if _, ok := ocierr.CodeOf(err); ok {
		return &statusError{ocierr.StatusOf(err), msg}
	}
	return fmt.Errorf("%s: %w", ref, err)
}

func (a *API) prune(r *http.Request) (any, error) {
	var req PruneRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	age, err := ParseAge(req.OlderThan)
	if err != nil {
		return nil, &statusError{http.StatusBadRequest, err.Error()}
	}
	var busy func(string) bool
	if a.cache != nil {
		busy = a.cache.Busy
	}
	res, err := Prune(a.store, age, busy)
	if err != nil {
		return nil, err
	}
	a.log.Info("cache pruned by admin call", "older_than", age, "blobs", len(res.Removed), "bytes", res.Bytes)
	return res, nil
}

// decodeBody reads a small JSON request body into v (400 on failure).
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &statusError{http.StatusBadRequest, fmt.Sprintf("request body: %v", err)}
	}
	return nil
}
