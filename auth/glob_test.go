package auth

import (
	"strings"
	"testing"

	"github.com/cairn-mirror/cairn/internal/route"
)

func TestGlobMatch(t *testing.T) {
	for _, tc := range []struct {
		glob  string
		match []string
		miss  []string
	}{
		{"**",
			[]string{"docker.io/library/alpine", "localhost:5000/a", "ghcr.io/a/b/c/d"}, nil},
		{"*/**",
			[]string{"docker.io/library/alpine", "x"}, nil},
		{"registry.internal/myteam/**",
			[]string{"registry.internal/myteam", "registry.internal/myteam/app", "registry.internal/myteam/a/b"},
			[]string{"registry.internal/myteamx/app", "registry.internal/other/app", "docker.io/myteam/app", "registry.internal"}},
		{"docker.io/library/*",
			[]string{"docker.io/library/alpine"},
			[]string{"docker.io/library/a/b", "docker.io/library", "docker.io/libraryx/a"}},
		{"docker.io/*/alpine",
			[]string{"docker.io/library/alpine", "docker.io/me/alpine"},
			[]string{"docker.io/a/b/alpine", "docker.io/alpine"}},
		{"ghcr.io/org-*/app",
			[]string{"ghcr.io/org-a/app", "ghcr.io/org-/app"},
			[]string{"ghcr.io/org/app", "ghcr.io/org-a/b/app"}},
		{"*.internal/**",
			[]string{"registry.internal/a", "x.internal/a/b"},
			[]string{"registry.internal.example.com/a", "a/b.internal/c"}},
		{"**/app",
			[]string{"ghcr.io/app", "ghcr.io/org/app", "app"},
			[]string{"ghcr.io/app2", "ghcr.io/xapp", "ghcr.io/app/x"}},
		{"ghcr.io/**/app",
			[]string{"ghcr.io/app", "ghcr.io/org/app", "ghcr.io/a/b/app"},
			[]string{"ghcr.io/orgapp", "quay.io/org/app", "ghcr.io/org/app/x"}},
		{"ghcr.io/**/**/app",
			[]string{"ghcr.io/app", "ghcr.io/a/b/app"}, nil},
		{"a/**/b/**",
			[]string{"a/b", "a/x/b", "a/x/b/y/z"},
			[]string{"a/bb", "a/x/c"}},
		{"localhost:5000/x.y_z-w",
			[]string{"localhost:5000/x.y_z-w"},
			[]string{"localhost:5000/xay_z-w", "localhost:5000/x.y_z-w/a"}},
	} {
		g, err := parseGlob(tc.glob)
		if err != nil {
			t.Errorf("parseGlob(%q): %v", tc.glob, err)
			continue
		}
		for _, name := range tc.match {
			if !g.match(name) {
				t.Errorf("%q: got no match for %q, want a match (pattern %s)", tc.glob, name, g.re)
			}
		}
		for _, name := range tc.miss {
			if g.match(name) {
				t.Errorf("%q: got a match for %q, want none (pattern %s)", tc.glob, name, g.re)
			}
		}
	}
}

func TestParseGlobProblems(t *testing.T) {
	for _, tc := range []struct{ glob, want string }{
		{"", "empty repository glob"},
		{"/docker.io/x", "an empty path component"},
		{"docker.io//x", "an empty path component"},
		{"docker.io/x/", "an empty path component"},
		{"docker.io/x**", `component "x**": "**" must be a whole path component`},
		{"docker.io/***", `component "***": "**" must be a whole path component`},
		{"docker.io/Library/*", `component "Library": upper case`},
		{"docker.io/x?", `component "x?": '?' cannot appear`},
		{"docker.io/[ab]", `'[' cannot appear`},
		{"docker.io/alpine@sha256:abc", `'@' cannot appear`},
		{strings.Repeat("a", maxGlobLen+1), "repository glob of 513 bytes"},
	} {
		if _, err := parseGlob(tc.glob); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseGlob(%q): got %v, want an error containing %q", tc.glob, err, tc.want)
		}
	}
}

// The access globs agree with the pin globs of internal/route on every glob
// both accept, except one that starts with "**" (which pin globs read as one
// component: see below).
func TestGlobAgreesWithPinGlobs(t *testing.T) {
	globs := []string{
		"ghcr.io/org/**", "docker.io/library/*", "localhost:5000/**", "docker.io/*/alpine",
		"ghcr.io/org-*/app", "*.internal/**", "ghcr.io/**/app", "*/**", "a/**/b/**",
		"docker.io/library/alpine", "*/*",
	}
	names := []string{
		"ghcr.io/org", "ghcr.io/org/app", "ghcr.io/org/a/b", "ghcr.io/orgx/a", "ghcr.io/app",
		"ghcr.io/org-a/app", "ghcr.io/x/y/app", "docker.io/library/alpine", "docker.io/library/a/b",
		"docker.io/me/alpine", "localhost:5000/x", "localhost:5000/x/y", "registry.internal/a",
		"a/b", "a/x/b", "a/x/b/y", "a/bb",
	}
	for _, gs := range globs {
		g, err := parseGlob(gs)
		if err != nil {
			t.Fatalf("parseGlob(%q): %v", gs, err)
		}
		var pin route.PinRule
		if strings.Contains(gs, "*") {
			if pin, err = route.ParsePinRule(gs); err != nil {
				t.Fatalf("route.ParsePinRule(%q): %v", gs, err)
			}
		}
		for _, n := range names {
			want := gs == n // an exact pin needs a tag; compare names directly
			if strings.Contains(gs, "*") {
				want = pin.Matches(n, "")
			}
			if got := g.match(n); got != want {
				t.Errorf("%q on %q: got %v, pin glob says %v", gs, n, got, want)
			}
		}
	}
	// The one difference, on purpose: route's pin glob reads "**" that
	// does not follow a '/' as two one-component stars, so a bare "**"
	// matches no canonical name there. Here "**" is every repository, as
	// the access rules use it. If route changes, drop this.
	for _, tc := range []struct{ glob, name string }{
		{"**", "docker.io/library/alpine"},
		{"**/app", "ghcr.io/org/app"},
	} {
		pin, err := route.ParsePinRule(tc.glob)
		if err != nil {
			t.Fatal(err)
		}
		g, err := parseGlob(tc.glob)
		if err != nil {
			t.Fatal(err)
		}
		if !g.match(tc.name) || pin.Matches(tc.name, "") {
			t.Errorf("%q on %q: got %v (pin glob %v), want true (and false for pins)", tc.glob, tc.name, g.match(tc.name), pin.Matches(tc.name, ""))
		}
	}
}
