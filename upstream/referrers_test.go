package upstream

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-mirror/cairn/internal/ocierr"
)

const subject = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

type refDesc struct {
	MediaType    string `json:"mediaType"`
	Digest       string `json:"digest"`
	Size         int64  `json:"size"`
	ArtifactType string `json:"artifactType"`
}

// referrersAPI is a registry that serves only the referrers API: an index
// of descs for subject in library/app, filtered by artifactType (with
// OCI-Filters-Applied) when filter is set.
type referrersAPI struct {
	descs  []refDesc
	filter bool
	mu     sync.Mutex
	paths  []string // path?query of every referrers request
}

func (a *referrersAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v2/" {
		return
	}
	a.mu.Lock()
	a.paths = append(a.paths, r.URL.RequestURI())
	a.mu.Unlock()
	if r.URL.Path != "/v2/library/app/referrers/"+subject {
		http.NotFound(w, r)
		return
	}
	out := []refDesc{}
	at := r.URL.Query().Get("artifactType")
	for _, d := range a.descs {
		if !a.filter || at == "" || d.ArtifactType == at {
			out = append(out, d)
		}
	}
	if a.filter && at != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	w.Header().Set("Content-Type", ociIndexType)
	_ = json.NewEncoder(w).Encode(map[string]any{"schemaVersion": 2, "mediaType": ociIndexType, "manifests": out})
}

func (a *referrersAPI) client(t *testing.T, opts ...Option) *Client {
	t.Helper()
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	c, err := New("registry.example", srv.URL, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sig(n byte) refDesc {
	return refDesc{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: "sha256:" + strings.Repeat(string('a'+n), 64), Size: 100, ArtifactType: "application/vnd.example.sig"}
}

func sbom() refDesc {
	return refDesc{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: "sha256:" + strings.Repeat("f", 64), Size: 200, ArtifactType: "application/vnd.example.sbom"}
}

func TestReferrers(t *testing.T) {
	tests := []struct {
		name         string
		filter       bool
		artifactType string
		wantDigests  []string
		wantFiltered bool
		wantQuery    string
	}{
		{"all", true, "", []string{sig(0).Digest, sbom().Digest}, false, ""},
		{"filtered upstream", true, "application/vnd.example.sbom", []string{sbom().Digest}, true, "?artifactType=application%2Fvnd.example.sbom"},
		// The upstream ignores the filter: all come back, unfiltered.
		{"filter ignored", false, "application/vnd.example.sbom", []string{sig(0).Digest, sbom().Digest}, false, "?artifactType=application%2Fvnd.example.sbom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := &referrersAPI{descs: []refDesc{sig(0), sbom()}, filter: tt.filter}
			c := api.client(t)
			body, filtered, err := c.Referrers(t.Context(), "library/app", subject, tt.artifactType)
			if err != nil {
				t.Fatalf("Referrers: %v", err)
			}
			var idx struct {
				MediaType string    `json:"mediaType"`
				Manifests []refDesc `json:"manifests"`
			}
			if err := json.Unmarshal(body, &idx); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			var got []string
			for _, d := range idx.Manifests {
				got = append(got, d.Digest)
			}
			if strings.Join(got, ",") != strings.Join(tt.wantDigests, ",") {
				t.Errorf("got digests %v, want %v", got, tt.wantDigests)
			}
			if filtered != tt.wantFiltered {
				t.Errorf("got filtered %v, want %v", filtered, tt.wantFiltered)
			}
			want := "/v2/library/app/referrers/" + subject + tt.wantQuery
			if len(api.paths) != 1 || api.paths[0] != want {
				t.Errorf("upstream saw %v, want one GET of %s", api.paths, want)
			}
		})
	}
}

func TestReferrersWithoutAPI(t *testing.T) {
	notIndex := func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.Contains(r.URL.Path, "/referrers/") {
			return false
		}
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<html>welcome</html>"))
		return true
	}
	plain404 := func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.Contains(r.URL.Path, "/referrers/") {
			return false
		}
		http.NotFound(w, r) // distribution 2.8: "404 page not found", no OCI body
		return true
	}
	tests := []struct {
		name  string
		fault fault
	}{
		{"ggcr registry (404 METHOD_UNKNOWN)", nil},
		{"plain 404", plain404},
		{"200 that is no index", notIndex},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newTestUpstream(t)
			u.pushImage(t, "library/app:v1")
			if tt.fault != nil {
				u.use(tt.fault)
			} else {
				u.use()
			}
			_, _, err := u.client(t).Referrers(t.Context(), "library/app", subject, "")
			if !errors.Is(err, ErrNoReferrersAPI) {
				t.Fatalf("got %v, want ErrNoReferrersAPI", err)
			}
			if !errors.Is(err, ocierr.ManifestUnknown) || errors.Is(err, ocierr.Unavailable) {
				t.Errorf("got %v, want MANIFEST_UNKNOWN and not UNAVAILABLE (the upstream is up)", err)
			}
			if n := u.count("other"); n != 1 {
				t.Errorf("referrers requests %d, want 1 (a 404 is not retried)", n)
			}
		})
	}
}

func TestReferrersErrors(t *testing.T) {
	u := newTestUpstream(t)
	u.use(status(func(r *http.Request) bool { return strings.Contains(r.URL.Path, "/referrers/") }, http.StatusServiceUnavailable, nil, ""))
	_, _, err := u.client(t, WithRetries(1)).Referrers(t.Context(), "library/app", subject, "")
	if !errors.Is(err, ocierr.Unavailable) || errors.Is(err, ErrNoReferrersAPI) {
		t.Errorf("503: got %v, want UNAVAILABLE", err)
	}
	if n := u.count("other"); n != 2 {
		t.Errorf("503: %d requests, want 2 (one retry)", n)
	}
	for _, tt := range []struct{ repo, digest string }{
		{"Bad/Name", subject},
		{"library/app", "sha256:abc"},
		{"library/app", "md5:" + strings.Repeat("0", 32)},
	} {
		if _, _, err := u.client(t).Referrers(t.Context(), tt.repo, tt.digest, ""); err == nil {
			t.Errorf("Referrers(%q, %q): got no error", tt.repo, tt.digest)
		}
	}
}

func TestReferrersBodyCapped(t *testing.T) {
	u := newTestUpstream(t)
	big := `{"manifests":[],"pad":"` + strings.Repeat("x", maxReferrersBody) + `"}`
	u.use(status(func(r *http.Request) bool { return strings.Contains(r.URL.Path, "/referrers/") }, http.StatusOK,
		map[string]string{"Content-Type": ociIndexType}, big))
	if _, _, err := u.client(t).Referrers(t.Context(), "library/app", subject, ""); !errors.Is(err, ocierr.Unavailable) {
		t.Errorf("over-size answer: got %v, want UNAVAILABLE", err)
	}
}

func TestReferrersMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	api := &referrersAPI{descs: []refDesc{sig(0)}}
	c := api.client(t, WithMetrics(NewMetrics(reg)))
	if _, _, err := c.Referrers(t.Context(), "library/app", subject, ""); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if f.GetName() == "cairn_upstream_requests_total" && labels["op"] == OpReferrers && labels["status"] == "200" {
				found = m.GetCounter().GetValue() == 1
			}
		}
	}
	if !found {
		t.Errorf("no cairn_upstream_requests_total{op=%q,status=\"200\"} 1", OpReferrers)
	}
}
