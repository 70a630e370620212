package registry

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cairn-mirror/cairn/internal/oci"
	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/internal/route"
)

// emptyPuller holds nothing.
type emptyPuller struct{}

func (emptyPuller) Manifest(context.Context, route.Repo, string, []string) (oci.Manifest, error) {
	return oci.Manifest{}, ocierr.ManifestUnknown
}
func (emptyPuller) StatBlob(context.Context, route.Repo, string) (oci.Descriptor, error) {
	return oci.Descriptor{}, ocierr.BlobUnknown
}
func (emptyPuller) OpenBlob(context.Context, route.Repo, string) (oci.Blob, error) {
	return nil, ocierr.BlobUnknown
}
func (emptyPuller) Tags(context.Context, route.Repo, int, string) ([]string, bool, error) {
	return nil, false, ocierr.NameUnknown
}

func TestPullOnlyByDefault(t *testing.T) {
	router, err := route.NewRouter([]route.Namespace{{Name: "registry.internal", Default: true}, {Name: "docker.io", Mirror: true}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(router, emptyPuller{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method, path string
		status       int
		challenge    bool
	}{
		{"POST", "/v2/team/app/blobs/uploads/", 401, true},
		{"PUT", "/v2/team/app/manifests/v1", 401, true},
		{"POST", "/v2/docker.io/library/x/blobs/uploads/", 401, true},
		{"GET", "/v2/team/app/blobs/uploads/", 405, false},
		{"GET", "/v2/team/app/manifests/v1", 404, false},
		{"GET", "/v2/", 200, false},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
		if rec.Code != tt.status {
			t.Errorf("%s %s: status %d, want %d (body %s)", tt.method, tt.path, rec.Code, tt.status, rec.Body)
		}
		if got := strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), `Basic realm="cairn"`); got != tt.challenge {
			t.Errorf("%s %s: WWW-Authenticate %q", tt.method, tt.path, rec.Header().Get("WWW-Authenticate"))
		}
	}
}

func TestParseChunkRange(t *testing.T) {
	tests := []struct {
		in         string
		start, end int64
		ok         bool
	}{
		{"0-9", 0, 9, true},
		{"10-10", 10, 10, true},
		{"bytes=5-6", 5, 6, true},
		{"9-0", 0, 0, false},
		{"-5", 0, 0, false},
		{"5", 0, 0, false},
		{"a-b", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, tt := range tests {
		s, e, ok := parseChunkRange(tt.in)
		if ok != tt.ok || (ok && (s != tt.start || e != tt.end)) {
			t.Errorf("parseChunkRange(%q) = %d, %d, %v; want %d, %d, %v", tt.in, s, e, ok, tt.start, tt.end, tt.ok)
		}
	}
}

func TestUploadRange(t *testing.T) {
	for size, want := range map[int64]string{0: "0-0", 1: "0-0", 10: "0-9"} {
		if got := uploadRange(size); got != want {
			t.Errorf("uploadRange(%d) = %q, want %q", size, got, want)
		}
	}
}
