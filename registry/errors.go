package registry

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/cairn-mirror/cairn/internal/ocierr"
)

type errorBody struct {
	Errors []errorEntry `json:"errors"`
}

type errorEntry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// retryAfter is an optional ability of errors that say when to come back
// (an upstream's 429).
type retryAfter interface{ RetryAfter() time.Duration }

// writeError renders err as an OCI error body, unless the response has
// already started (then the body is cut short, see sendBlob).
func (h *Handler) writeError(w *responseWriter, r *http.Request, err error) {
	if w.status != 0 {
		return
	}
	status := ocierr.StatusOf(err)
	code, ok := ocierr.CodeOf(err)
	msg := err.Error()
	if !ok {
		code, msg = "UNKNOWN", "internal error"
	}
	setChallenge(w.Header(), err)
	var ra retryAfter
	if errors.As(err, &ra) && ra.RetryAfter() > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(ra.RetryAfter().Round(time.Second).Seconds())))
	}
	body, _ := json.Marshal(errorBody{Errors: []errorEntry{{Code: string(code), Message: msg}}})
	hdr := w.Header()
	for _, k := range []string{"Docker-Content-Digest", "Etag", "Accept-Ranges"} {
		hdr.Del(k)
	}
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// finish writes the access line and records the request's metrics.
func (h *Handler) finish(w *responseWriter, r *http.Request, req *request, start time.Time, err error) {
	d := time.Since(start)
	route := req.path.Kind.String()
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	h.metrics.observe(route, r.Method, status, d)
	level := slog.LevelInfo
	if err != nil && status >= 500 {
		level = slog.LevelWarn
	}
	if !h.log.Enabled(r.Context(), level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Int64("bytes", w.bytes),
		slog.Duration("duration", d),
		slog.String("remote", r.RemoteAddr),
	}
	if req.repo.Namespace != "" {
		attrs = append(attrs, slog.String("repo", req.repo.Canonical()))
	}
	if req.user != "" {
		attrs = append(attrs, slog.String("user", req.user))
	}
	if err != nil {
		attrs = append(attrs, slog.String("err", err.Error()))
	}
	h.log.LogAttrs(r.Context(), level, "request", attrs...)
}
