package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-mirror/cairn/cache"
	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/internal/route"
	"github.com/cairn-mirror/cairn/storage"
)

// fakeCache records pin calls and answers them with err.
type fakeCache struct {
	mu    sync.Mutex
	calls []string // "pin <ref> <reason>" or "unpin ..."
	err   error
	stats cache.Stats
}

func (f *fakeCache) record(op, ref, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, op+" "+ref+" "+reason)
	return f.err
}

func (f *fakeCache) Pin(_ context.Context, ref, reason string) error {
	return f.record("pin", ref, reason)
}

func (f *fakeCache) Unpin(_ context.Context, ref, reason string) error {
	return f.record("unpin", ref, reason)
}
func (f *fakeCache) Busy(string) bool   { return false }
func (f *fakeCache) Stats() cache.Stats { return f.stats }

func openStore(t *testing.T) *storage.Store {
	t.Helper()
	s, err := storage.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testRouter(t *testing.T) *route.Router {
	t.Helper()
	r, err := route.NewRouter([]route.Namespace{
		{Name: "docker.io", LibraryPrefix: true, Default: true, Mirror: true},
		{Name: "registry.internal"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// tokenFile writes an admin token file holding "s3cret\n".
func tokenFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(path, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func newAPI(t *testing.T, opts ...Option) *API {
	t.Helper()
	a, err := New(openStore(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// call sends one request to a and returns the status and the body.
func call(t *testing.T, a http.Handler, method, path, token, body string) (int, string) {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	a.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

func TestNewRefuses(t *testing.T) {
	if _, err := New(nil); err == nil {
		t.Error("New without a store: got no error")
	}
	if _, err := New(openStore(t), WithCache(&fakeCache{}, nil)); err == nil {
		t.Error("New with a cache and no router: got no error")
	}
	if _, err := New(openStore(t), WithCapacity(-1)); err == nil {
		t.Error("New with a negative capacity: got no error")
	}
}

func TestStats(t *testing.T) {
	c := &fakeCache{stats: cache.Stats{Hits: 3, Misses: 1, ServedBytes: 100, FetchedBytes: 30}}
	code, body := call(t, newAPI(t, WithCache(c, testRouter(t)), WithCapacity(1<<30)), "GET", PathStats, "", "")
	var st CacheStats
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
		t.Fatalf("GET stats: %d %s (%v)", code, body, err)
	}
	if st.CapacityBytes == nil || *st.CapacityBytes != 1<<30 || st.Blobs != 0 || st.UsedBytes != 0 {
		t.Errorf("stats of an empty store with a 1 GiB cap: got %+v", st)
	}
	want := SinceStart{Hits: 3, Misses: 1, HitRatio: 0.75, ServedBytes: 100, FetchedBytes: 30, SavedBytes: 70}
	if st.SinceStart == nil || *st.SinceStart != want {
		t.Errorf("since_start: got %+v, want %+v", st.SinceStart, want)
	}
	_, body = call(t, newAPI(t), "GET", PathStats, "", "")
	if strings.Contains(body, "since_start") {
		t.Errorf("stats without a cache: %s, want no since_start", body)
	}
}

// The guarded calls need admin.token_file and its token; reads do not.
func TestGuard(t *testing.T) {
	prune := `{"older_than": "30d"}`
	if code, body := call(t, newAPI(t), "POST", PathPrune, "s3cret", prune); code != http.StatusForbidden || !strings.Contains(body, "admin.token_file is not set") {
		t.Errorf("prune without admin.token_file: %d %s, want 403 naming it", code, body)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _ := call(t, newAPI(t, WithTokenFile(empty)), "POST", PathPrune, "", prune); code != http.StatusForbidden {
		t.Errorf("prune with an empty admin.token_file: %d, want 403", code)
	}
	a := newAPI(t, WithTokenFile(tokenFile(t)))
	for _, tok := range []string{"", "wrong", "s3cret2"} {
		if code, _ := call(t, a, "POST", PathPrune, tok, prune); code != http.StatusUnauthorized {
			t.Errorf("prune with token %q: %d, want 401", tok, code)
		}
	}
	code, body := call(t, a, "POST", PathPrune, "s3cret", prune)
	if code != 200 || strings.TrimSpace(body) != `{"removed":[],"bytes":0}` {
		t.Errorf("prune with the token: %d %s, want 200 and nothing removed", code, body)
	}
	if code, body := call(t, a, "GET", PathRepos, "", ""); code != 200 || strings.TrimSpace(body) != "[]" {
		t.Errorf("GET repos of an empty store without a token: %d %s, want 200 []", code, body)
	}
}

// A pin's reference is canonicalised by the router before the cache sees
// it; refusals get their status.
func TestPin(t *testing.T) {
	c := &fakeCache{}
	a := newAPI(t, WithCache(c, testRouter(t)), WithTokenFile(tokenFile(t)))
	pin := func(path, ref string) (int, string) {
		return call(t, a, "POST", path, "s3cret", fmt.Sprintf(`{"ref": %q}`, ref))
	}
	code, body := pin(PathPin, "docker.io/alpine:3.19")
	var res PinResult
	if err := json.Unmarshal([]byte(body), &res); code != 200 || err != nil {
		t.Fatalf("pin: %d %s", code, body)
	}
	if want := (PinResult{Ref: "docker.io/library/alpine:3.19", Pinned: true, Reason: PinReason}); res != want {
		t.Errorf("pin docker.io/alpine:3.19: got %+v, want %+v", res, want)
	}
	if code, _ := pin(PathUnpin, "registry.internal/team/app:v1"); code != 200 {
		t.Errorf("unpin: %d, want 200", code)
	}
	want := "pin docker.io/library/alpine:3.19 cli|unpin registry.internal/team/app:v1 cli"
	if got := strings.Join(c.calls, "|"); got != want {
		t.Errorf("the cache was asked: %s, want %s", got, want)
	}
	for _, tt := range []struct {
		ref    string
		status int
	}{
		{"not a ref", http.StatusBadRequest},
		{"docker.io/library/*", http.StatusBadRequest},
		{"quay.io/app:v1", http.StatusNotFound},
	} {
		if code, body := pin(PathPin, tt.ref); code != tt.status {
			t.Errorf("pin %q: %d %s, want %d", tt.ref, code, body, tt.status)
		}
	}
	if code, _ := call(t, a, "POST", PathPin, "s3cret", `{"ref": "docker.io/a:1", "extra": 1}`); code != http.StatusBadRequest {
		t.Errorf("pin with an unknown field: %d, want 400", code)
	}
	if len(c.calls) != 2 {
		t.Errorf("refused pins reached the cache: %v", c.calls)
	}
	for _, tt := range []struct {
		err    error
		status int
	}{
		{storage.ErrNotFound, http.StatusNotFound},
		{fmt.Errorf("upstream down: %w", ocierr.Unavailable), http.StatusServiceUnavailable},
		{fmt.Errorf("disk on fire"), http.StatusInternalServerError},
	} {
		c.err = tt.err
		if code, body := pin(PathPin, "docker.io/alpine:3.19"); code != tt.status || !strings.Contains(body, "docker.io/library/alpine:3.19") {
			t.Errorf("pin failing with %v: %d %s, want %d naming the ref", tt.err, code, body, tt.status)
		}
	}
	noCache := newAPI(t, WithTokenFile(tokenFile(t)))
	if code, _ := call(t, noCache, "POST", PathPin, "s3cret", `{"ref": "docker.io/alpine:3.19"}`); code != http.StatusServiceUnavailable {
		t.Errorf("pin without a cache: %d, want 503", code)
	}
}

func TestRemoveBlobRefusals(t *testing.T) {
	a := newAPI(t, WithTokenFile(tokenFile(t)))
	missing := "sha256:" + strings.Repeat("ab", 32)
	for _, tt := range []struct {
		digest string
		status int
	}{
		{missing, http.StatusNotFound},
		{"sha256:xyz", http.StatusBadRequest},
	} {
		if code, body := call(t, a, "DELETE", PathBlobs+tt.digest, "s3cret", ""); code != tt.status {
			t.Errorf("DELETE %s: %d %s, want %d", tt.digest, code, body, tt.status)
		}
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	var ready bool
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "cairn_test_gauge", Help: "test"})
	reg.MustRegister(g)
	a := newAPI(t, WithReadiness(func() bool { return ready }), WithMetrics(reg))
	if code, body := call(t, a, "GET", "/healthz", "", ""); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, _ := call(t, a, "GET", "/readyz", "", ""); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz while not ready: %d, want 503", code)
	}
	ready = true
	if code, body := call(t, a, "GET", "/readyz", "", ""); code != 200 || body != "ready\n" {
		t.Errorf("/readyz while ready: %d %q", code, body)
	}
	if code, body := call(t, a, "GET", "/metrics", "", ""); code != 200 || !strings.Contains(body, "cairn_test_gauge 0") {
		t.Errorf("/metrics: %d, want the registry's gauge in\n%s", code, body)
	}
	if code, _ := call(t, a, "GET", "/debug/pprof/", "", ""); code != 200 {
		t.Errorf("/debug/pprof/: %d, want 200", code)
	}
	if code, _ := call(t, newAPI(t), "GET", "/metrics", "", ""); code != http.StatusNotFound {
		t.Errorf("/metrics without WithMetrics: %d, want 404", code)
	}
}

func TestParseAge(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"720h", 720 * time.Hour, true},
		{"30d", 30 * 24 * time.Hour, true},
		{"0s", 0, true},
		{"0d", 0, true},
		{"1.5d", 0, false},
		{"-1h", 0, false},
		{"-2d", 0, false},
		{"", 0, false},
		{"d", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseAge(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("ParseAge(%q): got %v, %v, want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestByNamespace(t *testing.T) {
	rows := []TagRow{
		{Namespace: "docker.io", Bytes: 10}, {Namespace: "docker.io", Bytes: 5}, {Namespace: "ghcr.io", Bytes: 1},
	}
	got := ByNamespace(rows)
	want := []NamespaceUsage{{"docker.io", 2, 15}, {"ghcr.io", 1, 1}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := ByNamespace(nil); got == nil || len(got) != 0 {
		t.Errorf("ByNamespace(nil): got %#v, want an empty list", got)
	}
}
