package route

import (
	"errors"
	"strings"
	"testing"

	"github.com/cairn-mirror/cairn/internal/ocierr"
)

const d256 = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParsePath(t *testing.T) {
	tests := []struct {
		path string
		want Path
		code ocierr.Code
	}{
		{path: "/v2/", want: Path{Kind: KindBase}},
		{path: "/v2", want: Path{Kind: KindBase}},
		{path: "/v2/alpine/manifests/3.19", want: Path{KindManifest, "alpine", "3.19"}},
		{path: "/v2/library/alpine/manifests/" + d256, want: Path{KindManifest, "library/alpine", d256}},
		{path: "/v2/ghcr.io/org/app/blobs/" + d256, want: Path{KindBlob, "ghcr.io/org/app", d256}},
		{path: "/v2/localhost:5000/a/tags/list", want: Path{KindTags, "localhost:5000/a", ""}},
		{path: "/v2/a/b/referrers/" + d256, want: Path{KindReferrers, "a/b", d256}},
		{path: "/v2/a/blobs/uploads/", want: Path{KindUploads, "a", ""}},
		{path: "/v2/a/blobs/uploads/abc-123", want: Path{KindUploads, "a", "abc-123"}},
		// names may contain the endpoint words; the endpoint is read from the end
		{path: "/v2/manifests/manifests/latest", want: Path{KindManifest, "manifests", "latest"}},
		{path: "/v2/a/blobs/x/manifests/v1", want: Path{KindManifest, "a/blobs/x", "v1"}},
		{path: "/v2/a__b/c-d/e_f/g.h/manifests/_v", want: Path{KindManifest, "a__b/c-d/e_f/g.h", "_v"}},
		{path: "/v2/a---b/manifests/v", want: Path{KindManifest, "a---b", "v"}},

		{path: "/v3/a/manifests/x", code: ocierr.NameUnknown},
		{path: "/v2/a/unknown/x", code: ocierr.NameUnknown},
		{path: "/v2/a/tags/other", code: ocierr.NameUnknown},
		{path: "/v2/Alpine/manifests/x", code: ocierr.NameInvalid},
		{path: "/v2/../manifests/x", code: ocierr.NameInvalid},
		{path: "/v2/a/../b/manifests/x", code: ocierr.NameInvalid},
		{path: "/v2/a/./b/manifests/x", code: ocierr.NameInvalid},
		{path: "/v2/a//b/manifests/x", code: ocierr.NameInvalid},
		{path: "/v2//manifests/x", code: ocierr.NameInvalid},
		{path: "/v2/a_/manifests/x", code: ocierr.NameInvalid},
		{path: "/v2/a___b/manifests/x", code: ocierr.NameInvalid},
		{path: "/v2/a._b/manifests/x", code: ocierr.NameInvalid},
		{path: "/v2/a/b:1/manifests/x", code: ocierr.NameInvalid},
		{path: "/v2/a:99999/b/manifests/x", code: ocierr.NameInvalid},
		{path: "/v2/a/manifests/.bad", code: ocierr.ManifestInvalid},
		{path: "/v2/a/manifests/" + strings.Repeat("t", 129), code: ocierr.ManifestInvalid},
		{path: "/v2/a/manifests/sha256:abc", code: ocierr.DigestInvalid},
		{path: "/v2/a/blobs/latest", code: ocierr.DigestInvalid},
		{path: "/v2/a/blobs/sha256:" + strings.ToUpper(d256[7:]), code: ocierr.DigestInvalid},
		{path: "/v2/a/blobs/md5:0123456789abcdef0123456789abcdef", code: ocierr.DigestInvalid},
		{path: "/v2/a/blobs/sha256:../../etc/passwd", code: ocierr.NameUnknown},
		{path: "/v2/a/blobs/uploads/../x", code: ocierr.NameUnknown},
	}
	for _, tt := range tests {
		got, err := ParsePath(tt.path)
		if tt.code != "" {
			if c, _ := ocierr.CodeOf(err); c != tt.code {
				t.Errorf("ParsePath(%q) error %v, want code %s", tt.path, err, tt.code)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParsePath(%q) = %+v, %v; want %+v", tt.path, got, err, tt.want)
		}
	}
}

func testRouter(t *testing.T) *Router {
	t.Helper()
	r, err := NewRouter([]Namespace{
		{Name: "docker.io", Aliases: []string{"index.docker.io", "registry-1.docker.io"}, LibraryPrefix: true, Default: true},
		{Name: "ghcr.io"},
		{Name: "localhost:5000"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestResolve(t *testing.T) {
	r := testRouter(t)
	tests := []struct {
		name, ns  string
		canonical string
		code      ocierr.Code
	}{
		{name: "alpine", canonical: "docker.io/library/alpine"},
		{name: "library/alpine", canonical: "docker.io/library/alpine"},
		{name: "org/app", canonical: "docker.io/org/app"},
		{name: "library/alpine", ns: "docker.io", canonical: "docker.io/library/alpine"},
		{name: "alpine", ns: "index.docker.io", canonical: "docker.io/library/alpine"},
		{name: "alpine", ns: "DOCKER.IO", canonical: "docker.io/library/alpine"},
		{name: "org/app", ns: "ghcr.io", canonical: "ghcr.io/org/app"},
		{name: "app", ns: "ghcr.io", canonical: "ghcr.io/app"}, // no library/ outside docker.io
		{name: "ghcr.io/org/app", canonical: "ghcr.io/org/app"},
		{name: "docker.io/alpine", canonical: "docker.io/library/alpine"},
		{name: "registry-1.docker.io/library/alpine", canonical: "docker.io/library/alpine"},
		{name: "localhost:5000/x", canonical: "localhost:5000/x"},
		{name: "quay.io/org/app", code: ocierr.NameUnknown},
		{name: "localhost/x", code: ocierr.NameUnknown},
		{name: "org/app", ns: "quay.io", code: ocierr.NameUnknown},
	}
	for _, tt := range tests {
		got, err := r.Resolve(tt.name, tt.ns)
		if tt.code != "" {
			if c, _ := ocierr.CodeOf(err); c != tt.code {
				t.Errorf("Resolve(%q, %q) error %v, want code %s", tt.name, tt.ns, err, tt.code)
			}
			continue
		}
		if err != nil || got.Canonical() != tt.canonical || got.Sent != tt.name {
			t.Errorf("Resolve(%q, %q) = %+v (%s), %v; want %s", tt.name, tt.ns, got, got.Canonical(), err, tt.canonical)
		}
	}
}

func TestResolveWithoutDefault(t *testing.T) {
	r, err := NewRouter([]Namespace{{Name: "ghcr.io"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Resolve("org/app", ""); !errors.Is(err, ocierr.NameUnknown) {
		t.Errorf("got %v, want NAME_UNKNOWN without a default namespace", err)
	}
}

func TestNewRouterRejects(t *testing.T) {
	tests := [][]Namespace{
		{{Name: "a.io", Default: true}, {Name: "b.io", Default: true}},
		{{Name: "a.io"}, {Name: "b.io", Aliases: []string{"a.io"}}},
		{{Name: "notahost"}},
		{{Name: "https://a.io"}},
	}
	for _, nss := range tests {
		if _, err := NewRouter(nss); err == nil {
			t.Errorf("NewRouter(%+v) = nil error, want one", nss)
		}
	}
}

// FuzzParsePath checks that the parser never panics and that whatever it
// accepts is safe to use as a storage key and resolves consistently.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"/v2/", "/v2/a/manifests/v1", "/v2/ghcr.io/a/b/blobs/" + d256,
		"/v2/a/tags/list", "/v2/a/blobs/uploads/x", "/v2/../x", "/v2/a/referrers/" + d256} {
		f.Add(s, "")
		f.Add(s, "docker.io")
	}
	r, err := NewRouter([]Namespace{{Name: "docker.io", LibraryPrefix: true, Default: true}, {Name: "ghcr.io"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, p, ns string) {
		got, err := ParsePath(p)
		if err != nil {
			if _, ok := ocierr.CodeOf(err); !ok {
				t.Fatalf("ParsePath(%q) error without a code: %v", p, err)
			}
			return
		}
		if got.Kind == KindBase {
			return
		}
		for _, c := range strings.Split(got.Name, "/") {
			if c == "" || c == "." || c == ".." {
				t.Fatalf("ParsePath(%q) accepted name %q", p, got.Name)
			}
		}
		if strings.ContainsAny(got.Name+got.Reference, "\x00\\ %?#") {
			t.Fatalf("ParsePath(%q) accepted unsafe bytes: %+v", p, got)
		}
		repo, err := r.Resolve(got.Name, ns)
		if err == nil && (repo.Namespace == "" || repo.Name == "" || strings.HasPrefix(repo.Name, "/")) {
			t.Fatalf("Resolve(%q, %q) = %+v", got.Name, ns, repo)
		}
	})
}

func TestRouterMirror(t *testing.T) {
	r, err := NewRouter([]Namespace{
		{Name: "docker.io", Aliases: []string{"index.docker.io"}, Mirror: true},
		{Name: "registry.internal"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for ns, want := range map[string]bool{"docker.io": true, "index.docker.io": false, "registry.internal": false, "quay.io": false} {
		if got := r.Mirror(ns); got != want {
			t.Errorf("Mirror(%q) = %v, want %v", ns, got, want)
		}
	}
}
