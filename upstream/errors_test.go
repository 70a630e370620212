package upstream

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-mirror/cairn/internal/ocierr"
)

func TestClassify(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		op             string
		status         int
		retryAfter     string
		bodyCode       ocierr.Code
		wantCode       ocierr.Code
		wantRetryAfter time.Duration
	}{
		{OpManifestGet, 404, "", "", ocierr.ManifestUnknown, 0},
		{OpManifestHead, 404, "", "", ocierr.ManifestUnknown, 0},
		{OpManifestGet, 404, "", ocierr.NameUnknown, ocierr.NameUnknown, 0},
		{OpManifestGet, 404, "", ocierr.Denied, ocierr.ManifestUnknown, 0},
		{OpBlobGet, 404, "", "", ocierr.BlobUnknown, 0},
		{OpBlobHead, 404, "", "", ocierr.BlobUnknown, 0},
		{OpTags, 404, "", "", ocierr.NameUnknown, 0},
		{OpPing, 404, "", "", ocierr.Unavailable, 0},
		{OpBlobGet, 401, "", "", ocierr.Unauthorized, 0},
		{OpBlobGet, 403, "", ocierr.Unauthorized, ocierr.Denied, 0},
		{OpManifestGet, 429, "7", "", ocierr.TooManyRequests, 7 * time.Second},
		{OpManifestGet, 429, "Wed, 01 Jan 2025 00:01:00 GMT", "", ocierr.TooManyRequests, time.Minute},
		{OpManifestGet, 429, "soon", "", ocierr.TooManyRequests, 0},
		{OpBlobGet, 416, "", "", ocierr.RangeInvalid, 0},
		{OpManifestGet, 400, "", ocierr.NameInvalid, ocierr.NameInvalid, 0},
		{OpManifestGet, 400, "", "BAD_REQUEST", ocierr.Unavailable, 0},
		{OpManifestGet, 405, "", "", ocierr.Unavailable, 0},
		{OpManifestGet, 500, "", ocierr.ManifestUnknown, ocierr.Unavailable, 0},
		{OpManifestGet, 503, "", "", ocierr.Unavailable, 0},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.retryAfter != "" {
			h.Set("Retry-After", tt.retryAfter)
		}
		e := classify("docker.io", tt.op, tt.status, h, tt.bodyCode, "msg", now)
		if e.Code != tt.wantCode || e.Retry != tt.wantRetryAfter || e.Status != tt.status {
			t.Errorf("classify(%s, %d, %q): got %s/%v/%d, want %s/%v/%d", tt.op, tt.status, tt.bodyCode, e.Code, e.Retry, e.Status, tt.wantCode, tt.wantRetryAfter, tt.status)
		}
		if !errors.Is(e, tt.wantCode) {
			t.Errorf("classify(%s, %d): errors.Is(%v, %s) false", tt.op, tt.status, e, tt.wantCode)
		}
	}
}

func TestErrorsFromUpstream(t *testing.T) {
	body := func(code string) string { return `{"errors":[{"code":"` + code + `","message":"m"}]}` }
	tests := []struct {
		name         string
		fault        fault
		call         string // manifest, blob, tags
		retries      int
		wantCode     ocierr.Code
		wantStatus   int // 0: not a *StatusError
		wantRequests int
		extra        int // net/http resends an idempotent request once when a reused connection dies first
	}{
		{"manifest 404", nil, "manifest", 2, ocierr.ManifestUnknown, 404, 1, 0},
		{"blob 404", nil, "blob", 2, ocierr.BlobUnknown, 404, 1, 0},
		{"tags 404", nil, "tags", 2, ocierr.NameUnknown, 404, 1, 0},
		{"401", status(isKind("manifest"), 401, nil, body("UNAUTHORIZED")), "manifest", 2, ocierr.Unauthorized, 401, 1, 0},
		{"403", status(isKind("blob"), 403, nil, body("DENIED")), "blob", 2, ocierr.Denied, 403, 1, 0},
		{"429 not retried", status(isKind("manifest"), 429, map[string]string{"Retry-After": "7"}, body("TOOMANYREQUESTS")), "manifest", 2, ocierr.TooManyRequests, 429, 1, 0},
		{"500 retried twice", status(isKind("manifest"), 500, nil, ""), "manifest", 2, ocierr.Unavailable, 500, 3, 0},
		{"503 retried 4 times", status(isKind("blob"), 503, nil, ""), "blob", 4, ocierr.Unavailable, 503, 5, 0},
		{"502 no retries", status(isKind("tags"), 502, nil, ""), "tags", 0, ocierr.Unavailable, 502, 1, 0},
		{"dropped connection retried", hijackClose(isKind("manifest")), "manifest", 2, ocierr.Unavailable, 0, 3, 1},
	}
	missing := "sha256:" + strings.Repeat("a", 64)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newTestUpstream(t)
			u.pushImage(t, "library/app:v1")
			var fs []fault
			if tt.fault != nil {
				fs = append(fs, tt.fault)
			}
			u.use(fs...)
			c := u.client(t, WithRetries(tt.retries))
			var err error
			switch tt.call {
			case "manifest":
				_, err = c.Manifest(t.Context(), "library/app", "nope")
			case "blob":
				_, err = c.OpenBlob(t.Context(), "library/app", missing, 0)
			case "tags":
				_, _, err = c.Tags(t.Context(), "library/absent", 0, "")
			}
			if !errors.Is(err, tt.wantCode) {
				t.Fatalf("got %v, want %s", err, tt.wantCode)
			}
			var se *StatusError
			if gotStatus := 0; errors.As(err, &se) {
				gotStatus = se.Status
				if gotStatus != tt.wantStatus {
					t.Errorf("got status %d, want %d", gotStatus, tt.wantStatus)
				}
			} else if tt.wantStatus != 0 {
				t.Errorf("got %T, want a *StatusError with status %d", err, tt.wantStatus)
			}
			if tt.wantStatus == 429 && se.Retry != 7*time.Second {
				t.Errorf("got Retry %v, want 7s", se.Retry)
			}
			if got := u.count(tt.call); got < tt.wantRequests || got > tt.wantRequests+tt.extra {
				t.Errorf("got %d %s requests, want %d (+%d)", got, tt.call, tt.wantRequests, tt.extra)
			}
		})
	}
}

// hijackClose drops the connection of matching requests without answering.
func hijackClose(match func(*http.Request) bool) fault {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if !match(r) {
			return false
		}
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
		return true
	}
}

func TestPingRetried(t *testing.T) {
	u := newTestUpstream(t)
	u.use(status(isKind("ping"), http.StatusServiceUnavailable, nil, ""))
	_, err := u.client(t, WithRetries(2)).Manifest(t.Context(), "library/app", "v1")
	var se *StatusError
	if !errors.Is(err, ocierr.Unavailable) || !errors.As(err, &se) || se.Op != OpPing || se.Status != 503 {
		t.Fatalf("got %v, want a ping StatusError 503 %s", err, ocierr.Unavailable)
	}
	if got := u.count("ping"); got != 3 {
		t.Errorf("got %d pings, want 3 (cairn's 2 retries, none from ggcr)", got)
	}
	if got := u.count("manifest"); got != 0 {
		t.Errorf("got %d manifest requests, want 0", got)
	}
}

func TestConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c, err := New("registry.example", "http://"+addr, WithRetries(1), withBackoff(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Manifest(t.Context(), "library/app", "v1")
	if !errors.Is(err, ocierr.Unavailable) {
		t.Errorf("got %v, want %s", err, ocierr.Unavailable)
	}
}

func TestContextCanceled(t *testing.T) {
	u := newTestUpstream(t)
	u.pushImage(t, "library/app:v1")
	started := make(chan struct{})
	u.use(func(w http.ResponseWriter, r *http.Request) bool {
		if kind(r.URL.Path) != "manifest" {
			return false
		}
		close(started)
		<-r.Context().Done()
		return true
	})
	ctx, cancel := context.WithCancel(t.Context())
	go func() { <-started; cancel() }()
	_, err := u.client(t).Manifest(ctx, "library/app", "v1")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if got := u.count("manifest"); got != 1 {
		t.Errorf("got %d manifest requests, want 1 (no retry after cancel)", got)
	}
	_, err = u.client(t).Manifest(ctx, "library/app", "v1")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("canceled before the call: got %v, want context.Canceled", err)
	}
}

func TestDigestMismatch(t *testing.T) {
	u := newTestUpstream(t)
	rawA, digestA := rawOf(t, u.pushImage(t, "library/app:a"))
	rawB, digestB := rawOf(t, u.pushImage(t, "library/app:b"))
	mt := "application/vnd.docker.distribution.manifest.v2+json"
	tests := []struct {
		name  string
		fault fault
		ref   string
	}{
		{"other bytes for a digest", status(isKind("manifest"), 200, map[string]string{"Content-Type": mt}, string(rawB)), digestA},
		{"Docker-Content-Digest disagrees", status(isKind("manifest"), 200, map[string]string{"Content-Type": mt, "Docker-Content-Digest": digestB}, string(rawA)), "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u.use(tt.fault)
			_, err := u.client(t).Manifest(t.Context(), "library/app", tt.ref)
			if !errors.Is(err, ErrDigestMismatch) || !errors.Is(err, ocierr.Unavailable) {
				t.Errorf("got %v, want ErrDigestMismatch and %s", err, ocierr.Unavailable)
			}
		})
	}
	u.use(status(isKind("manifest"), 200, map[string]string{"Docker-Content-Digest": digestB}, ""))
	if _, err := u.client(t).HeadManifest(t.Context(), "library/app", digestA); !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("HeadManifest: got %v, want ErrDigestMismatch", err)
	}
}

func TestManifestTooLarge(t *testing.T) {
	u := newTestUpstream(t)
	u.use(status(isKind("manifest"), 200, map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, strings.Repeat(" ", MaxManifestSize+1)))
	_, err := u.client(t).Manifest(t.Context(), "library/app", "v1")
	if !errors.Is(err, ocierr.ManifestInvalid) || ocierr.StatusOf(err) != http.StatusRequestEntityTooLarge {
		t.Errorf("got %v (status %d), want %s with 413", err, ocierr.StatusOf(err), ocierr.ManifestInvalid)
	}
}

func TestMetrics(t *testing.T) {
	u := newTestUpstream(t)
	u.pushImage(t, "library/app:v1")
	u.use()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	if NewMetrics(reg) == nil {
		t.Fatal("second NewMetrics on one registry: got nil")
	}
	c := u.client(t, WithMetrics(m))
	c.Manifest(t.Context(), "library/app", "v1")
	c.Manifest(t.Context(), "library/app", "nope")
	want := map[string]float64{"ping/200": 1, "manifest_get/200": 1, "manifest_get/404": 1}
	got := map[string]float64{}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "cairn_upstream_requests_total" {
			continue
		}
		for _, mt := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range mt.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["namespace"] != "registry.example" {
				t.Errorf("got namespace label %q", l["namespace"])
			}
			got[l["op"]+"/"+l["status"]] = mt.GetCounter().GetValue()
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %v, want %v", k, got[k], v)
		}
	}
}
