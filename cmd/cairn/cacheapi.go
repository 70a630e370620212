package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-mirror/cairn/cache"
	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/storage"
)

// The admin cache API, JSON over the admin listener:
//
//	GET    /api/v1/cache/stats           cacheStats
//	POST   /api/v1/cache/verify          verifyResult   (bearer token)
//	DELETE /api/v1/cache/blobs/{digest}  removeResult   (bearer token)
//	GET    /api/v1/cache/repos           []tagRow
//	POST   /api/v1/cache/pin             pinResult      (bearer token) {"ref": "<ns>/<repo>:<tag>"}
//	POST   /api/v1/cache/unpin           pinResult      (bearer token) {"ref": ...}
//	POST   /api/v1/cache/prune           pruneResult    (bearer token) {"older_than": "720h" or "30d"}
//
// Errors are {"error": "..."} with a matching status.

// cacheStats is the answer of GET /api/v1/cache/stats. CapacityBytes is
// cache.max_size (0: no cap); nil when unknown (offline, without a config).
type cacheStats struct {
	UsedBytes     int64       `json:"used_bytes"`
	Blobs         int         `json:"blobs"`
	CapacityBytes *int64      `json:"capacity_bytes,omitempty"`
	SinceStart    *sinceStart `json:"since_start,omitempty"` // nil offline
}

// sinceStart is what the running node did since it started.
type sinceStart struct {
	Hits         uint64  `json:"hits"`
	Misses       uint64  `json:"misses"`
	HitRatio     float64 `json:"hit_ratio"`
	ServedBytes  int64   `json:"served_bytes"`
	FetchedBytes int64   `json:"fetched_bytes"`
	SavedBytes   int64   `json:"saved_bytes"` // served without fetching: bytes the upstream was spared
}

func newSinceStart(st cache.Stats) *sinceStart {
	s := &sinceStart{Hits: st.Hits, Misses: st.Misses, ServedBytes: st.ServedBytes, FetchedBytes: st.FetchedBytes}
	if total := st.Hits + st.Misses; total > 0 {
		s.HitRatio = float64(st.Hits) / float64(total)
	}
	s.SavedBytes = max(st.ServedBytes-st.FetchedBytes, 0)
	return s
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

// tagRow is one tag record of GET /api/v1/cache/repos. Bytes is the size of
// the stored part of the tag's manifest closure (storage.Closure).
type tagRow struct {
	Namespace string    `json:"namespace"`
	Repo      string    `json:"repo"`
	Tag       string    `json:"tag"`
	Digest    string    `json:"digest"`
	MediaType string    `json:"media_type"`
	CheckedAt time.Time `json:"checked_at"`
	Bytes     int64     `json:"bytes"`
}

// refRequest is the body of the pin and unpin calls.
type refRequest struct {
	Ref string `json:"ref"`
}

// pinResult is the answer of the pin and unpin calls.
type pinResult struct {
	Ref    string `json:"ref"`
	Pinned bool   `json:"pinned"`
	Reason string `json:"reason"`
}

// pruneRequest is the body of POST /api/v1/cache/prune.
type pruneRequest struct {
	OlderThan string `json:"older_than"`
}

// pruneResult is what a prune removed.
type pruneResult struct {
	Removed []string `json:"removed"`
	Bytes   int64    `json:"bytes"`
}

func newPruneResult(evicted []storage.Evicted) pruneResult {
	res := pruneResult{Removed: make([]string, 0, len(evicted))}
	for _, ev := range evicted {
		res.Removed = append(res.Removed, ev.Digest)
		res.Bytes += ev.Size
	}
	return res
}

// apiError is an error with the HTTP status it is answered with.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

// pinner pins and unpins images by canonical reference; *cache.Cache is
// one. Both may fetch from upstream and block until ctx ends. Errors wrap
// ocierr codes (NAME_INVALID for a bad ref) or storage.ErrNotFound.
type pinner interface {
	Pin(ctx context.Context, ref, reason string) error
	Unpin(ctx context.Context, ref, reason string) error
	// Busy reports a blob being filled or read right now (prune spares it).
	Busy(digest string) bool
	// Stats are the cache's counts since start.
	Stats() cache.Stats
}

// pinReason is the pin reason of the pin and unpin calls.
const pinReason = "cli"

// cacheAPI serves the cache admin calls for one store.
type cacheAPI struct {
	store     *storage.Store
	pins      pinner // the node's cache
	capacity  int64  // cache.max_size, 0: no cap
	tokenFile string // admin.token_file, "" refuses the guarded calls
	log       *slog.Logger
}

// register mounts the cache API on mux.
func (a *cacheAPI) register(mux *http.ServeMux) {
	mux.Handle("GET /api/v1/cache/stats", a.wrap(a.stats))
	mux.Handle("POST /api/v1/cache/verify", a.wrap(a.guard(a.verify)))
	mux.Handle("DELETE /api/v1/cache/blobs/{digest}", a.wrap(a.guard(a.remove)))
	mux.Handle("GET /api/v1/cache/repos", a.wrap(a.repos))
	mux.Handle("POST /api/v1/cache/pin", a.wrap(a.guard(a.pin)))
	mux.Handle("POST /api/v1/cache/unpin", a.wrap(a.guard(a.unpin)))
	mux.Handle("POST /api/v1/cache/prune", a.wrap(a.guard(a.prune)))
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
	st := cacheStats{UsedBytes: used, Blobs: blobs, CapacityBytes: &capacity}
	if a.pins != nil {
		st.SinceStart = newSinceStart(a.pins.Stats())
	}
	return st, nil
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

func (a *cacheAPI) repos(*http.Request) (any, error) {
	return listTags(a.store)
}

// listTags returns every tag record with the stored size of its closure.
// The records are collected first: EachTag's callback must stay short.
func listTags(store *storage.Store) ([]tagRow, error) {
	rows := []tagRow{}
	err := store.EachTag(func(ns, repo, tag string, rec storage.TagRecord) error {
		rows = append(rows, tagRow{Namespace: ns, Repo: repo, Tag: tag, Digest: rec.Digest,
			MediaType: rec.MediaType, CheckedAt: rec.CheckedAt})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing tags: %w", err)
	}
	for i := range rows {
		if rows[i].Bytes, err = closureBytes(store, rows[i].Digest); err != nil {
			return nil, err
		}
	}
	return rows, nil
}

// closureBytes sums the sizes of the stored digests of d's closure.
func closureBytes(store *storage.Store, d string) (int64, error) {
	closure, err := store.Closure(d)
	if err != nil {
		return 0, fmt.Errorf("closure of %s: %w", d, err)
	}
	var n int64
	for _, c := range closure {
		info, err := store.Stat(c)
		switch {
		case errors.Is(err, storage.ErrNotFound):
		case err != nil:
			return 0, fmt.Errorf("closure of %s: %w", d, err)
		default:
			n += info.Size
		}
	}
	return n, nil
}

func (a *cacheAPI) pin(r *http.Request) (any, error) {
	return a.setPin(r, true)
}

func (a *cacheAPI) unpin(r *http.Request) (any, error) {
	return a.setPin(r, false)
}

// setPin pins or unpins the body's ref under pinReason.
func (a *cacheAPI) setPin(r *http.Request, pin bool) (any, error) {
	var req refRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	if a.pins == nil {
		return nil, &apiError{http.StatusServiceUnavailable, "this node has no cache to pin with"}
	}
	op := a.pins.Unpin
	if pin {
		op = a.pins.Pin
	}
	if err := op(r.Context(), req.Ref, pinReason); err != nil {
		return nil, pinError(req.Ref, err)
	}
	a.log.Info("pin changed by admin call", "ref", req.Ref, "pinned", pin)
	return pinResult{Ref: req.Ref, Pinned: pin, Reason: pinReason}, nil
}

// pinError maps a pin or unpin failure to a status: a bad ref is 400, an
// unknown tag or manifest 404, other OCI codes their own status.
func pinError(ref string, err error) error {
	msg := fmt.Sprintf("%s: %v", ref, err)
	if errors.Is(err, storage.ErrNotFound) {
		return &apiError{http.StatusNotFound, msg}
	}
	if _, ok := ocierr.CodeOf(err); ok {
		return &apiError{ocierr.StatusOf(err), msg}
	}
	return fmt.Errorf("%s: %w", ref, err)
}

func (a *cacheAPI) prune(r *http.Request) (any, error) {
	var req pruneRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	age, err := parseAge(req.OlderThan)
	if err != nil {
		return nil, &apiError{http.StatusBadRequest, err.Error()}
	}
	var busy func(string) bool
	if a.pins != nil {
		busy = a.pins.Busy
	}
	res, err := pruneStore(a.store, age, busy)
	if err != nil {
		return nil, err
	}
	a.log.Info("cache pruned by admin call", "older_than", age, "blobs", len(res.Removed), "bytes", res.Bytes)
	return res, nil
}

// pruneStore removes the unpinned blobs not read for age, sparing those
// busy reports (nil offline, where nothing else reads the store).
func pruneStore(store *storage.Store, age time.Duration, busy func(string) bool) (pruneResult, error) {
	evicted, err := store.Prune(time.Now().Add(-age), busy)
	if err != nil {
		return newPruneResult(evicted), fmt.Errorf("prune: %w", err)
	}
	return newPruneResult(evicted), nil
}

// parseAge parses a Go duration or a whole number of days ("30d"); it
// must not be negative.
func parseAge(s string) (time.Duration, error) {
	var d time.Duration
	var err error
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		n, err = strconv.Atoi(days)
		d = time.Duration(n) * 24 * time.Hour
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d < 0 {
		return 0, fmt.Errorf("older_than %q: want a duration such as 720h or a number of days such as 30d", s)
	}
	return d, nil
}

// decodeBody reads a small JSON request body into v (400 on failure).
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &apiError{http.StatusBadRequest, fmt.Sprintf("request body: %v", err)}
	}
	return nil
}
