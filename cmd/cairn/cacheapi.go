package main

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/cairn-mirror/cairn/storage"
)

// The admin cache API, JSON over the admin listener:
//
//	GET    /api/v1/cache/stats           cacheStats
//	POST   /api/v1/cache/verify          verifyResult   (bearer token)
//	DELETE /api/v1/cache/blobs/{digest}  removeResult   (bearer token)
//
// Errors are {"error": "..."} with a matching status. There is no listing of
// repositories and tags: storage offers tags of one known repository only.

// cacheStats is the answer of GET /api/v1/cache/stats. CapacityBytes is
// cache.max_size (0: no cap); nil when unknown (offline, without a config).
type cacheStats struct {
	UsedBytes     int64  `json:"used_bytes"`
	Blobs         int    `json:"blobs"`
	CapacityBytes *int64 `json:"capacity_bytes,omitempty"`
}

// verifyResult is storage.VerifyReport with stable JSON names.
type verifyResult struct {
	Checked     int      `json:"checked"`
	Bytes       int64    `json:"bytes"`
	Quarantined []string `json:"quarantined"`
}

func newVerifyResult(r storage.VerifyReport) verifyResult {
	q := r.Quarantined
	if q == nil {
		q = []string{}
	}
	return verifyResult{Checked: r.Checked, Bytes: r.Bytes, Quarantined: q}
}

// removeResult is the answer of DELETE /api/v1/cache/blobs/{digest}.
type removeResult struct {
	Removed string `json:"removed"`
}

// apiError is an error with the HTTP status it is answered with.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

// cacheAPI serves the cache admin calls for one store.
type cacheAPI struct {
	store     *storage.Store
	capacity  int64  // cache.max_size, 0: no cap
	tokenFile string // admin.token_file, "" refuses the guarded calls
	log       *slog.Logger
}

// register mounts the cache API on mux.
func (a *cacheAPI) register(mux *http.ServeMux) {
	mux.Handle("GET /api/v1/cache/stats", a.wrap(a.stats))
	mux.Handle("POST /api/v1/cache/verify", a.wrap(a.guard(a.verify)))
	mux.Handle("DELETE /api/v1/cache/blobs/{digest}", a.wrap(a.guard(a.remove)))
}

type apiHandler func(*http.Request) (any, error)

// wrap renders a handler's value as JSON, or its error as {"error": ...}
// with the apiError's status (500 for any other error).
func (a *cacheAPI) wrap(h apiHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := h(r)
		status := http.StatusOK
		if err != nil {
			status = http.StatusInternalServerError
			var ae *apiError
			if errors.As(err, &ae) {
				status = ae.status
			}
			v = map[string]string{"error": err.Error()}
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
func (a *cacheAPI) guard(h apiHandler) apiHandler {
	return func(r *http.Request) (any, error) {
		if a.tokenFile == "" {
			return nil, &apiError{http.StatusForbidden, "admin.token_file is not set: mutating and expensive admin calls are disabled"}
		}
		want, err := os.ReadFile(a.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("reading admin.token_file: %w", err)
		}
		token := strings.TrimSpace(string(want))
		if token == "" {
			return nil, &apiError{http.StatusForbidden, "admin.token_file is empty: mutating and expensive admin calls are disabled"}
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(token)) != 1 {
			return nil, &apiError{http.StatusUnauthorized, "missing or wrong bearer token"}
		}
		return h(r)
	}
}

func (a *cacheAPI) stats(*http.Request) (any, error) {
	used, blobs := a.store.Usage()
	capacity := a.capacity
	return cacheStats{UsedBytes: used, Blobs: blobs, CapacityBytes: &capacity}, nil
}

func (a *cacheAPI) verify(r *http.Request) (any, error) {
	rep, err := a.store.Verify(r.Context())
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	return newVerifyResult(rep), nil
}

func (a *cacheAPI) remove(r *http.Request) (any, error) {
	d := r.PathValue("digest")
	if err := removeBlob(a.store, d); err != nil {
		return nil, err
	}
	a.log.Info("blob removed by admin call", "digest", d)
	return removeResult{Removed: d}, nil
}

// removeBlob removes one blob, mapping storage's errors to statuses.
func removeBlob(store *storage.Store, digest string) error {
	err := store.Remove(digest)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return &apiError{http.StatusNotFound, fmt.Sprintf("blob %s is not cached", digest)}
	case errors.Is(err, storage.ErrInvalidDigest):
		return &apiError{http.StatusBadRequest, fmt.Sprintf("%q is not a digest", digest)}
	case err != nil:
		return fmt.Errorf("remove %s: %w", digest, err)
	}
	return nil
}
