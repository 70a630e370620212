package route

import (
	"strings"
	"testing"

	"github.com/cairn-mirror/cairn/internal/ocierr"
)

func TestPinRules(t *testing.T) {
	tests := []struct {
		rule      string
		bad       bool
		repo, tag string
		match     bool
	}{
		{rule: "docker.io/library/alpine:3.19", repo: "docker.io/library/alpine", tag: "3.19", match: true},
		{rule: "docker.io/library/alpine:3.19", repo: "docker.io/library/alpine", tag: "3.20"},
		{rule: "ghcr.io/org/**", repo: "ghcr.io/org/app", tag: "v1", match: true},
		{rule: "ghcr.io/org/**", repo: "ghcr.io/org/a/b", tag: "v1", match: true},
		{rule: "ghcr.io/org/**", repo: "ghcr.io/orgx/a", tag: "v1"},
		{rule: "docker.io/library/*", repo: "docker.io/library/alpine", tag: "x", match: true},
		{rule: "docker.io/library/*", repo: "docker.io/library/a/b", tag: "x"},
		{rule: "localhost:5000/**", repo: "localhost:5000/x", tag: "y", match: true},
		{rule: "docker.io/library/alpine@sha256:" + d256[7:], repo: "docker.io/library/alpine", tag: d256, match: true},
		{rule: "docker.io/library/alpine", bad: true},
		{rule: "docker.io/Library/alpine:1", bad: true},
		{rule: "docker.io/library/*:tag", bad: true},
		{rule: "docker.io/library/alpine:-x", bad: true},
	}
	for _, tt := range tests {
		r, err := ParsePinRule(tt.rule)
		if (err != nil) != tt.bad {
			t.Errorf("ParsePinRule(%q) error %v, want bad %v", tt.rule, err, tt.bad)
			continue
		}
		if !tt.bad && r.Matches(tt.repo, tt.tag) != tt.match {
			t.Errorf("%q matches %s:%s = %v, want %v", tt.rule, tt.repo, tt.tag, !tt.match, tt.match)
		}
	}
}

// Router.PinRule canonicalises a rule the way a pull's name is: the
// namespace by its name or an alias, library/ before a one-component
// repository of an exact reference where the namespace adds it.
func TestRouterPinRule(t *testing.T) {
	r, err := NewRouter([]Namespace{
		{Name: "docker.io", Aliases: []string{"index.docker.io"}, LibraryPrefix: true, Default: true, Mirror: true},
		{Name: "ghcr.io", Mirror: true},
		{Name: "localhost:5000"},
	})
	if err != nil {
		t.Fatal(err)
	}
	dgst := "sha256:" + d256[7:]
	for _, tt := range []struct {
		in, want string
		code     ocierr.Code // "": accepted
	}{
		{"docker.io/alpine:3.19", "docker.io/library/alpine:3.19", ""},
		{"docker.io/library/alpine:3.19", "docker.io/library/alpine:3.19", ""},
		{"docker.io/alpine@" + dgst, "docker.io/library/alpine@" + dgst, ""},
		{"index.docker.io/alpine:3.19", "docker.io/library/alpine:3.19", ""},
		{"docker.io/org/app:v1", "docker.io/org/app:v1", ""},
		{"ghcr.io/app:v1", "ghcr.io/app:v1", ""},
		{"localhost:5000/app:v1", "localhost:5000/app:v1", ""},
		{"docker.io/library/*", "docker.io/library/*", ""},
		{"docker.io/*", "docker.io/*", ""},
		{"index.docker.io/org/**", "docker.io/org/**", ""},
		{"quay.io/app:v1", "", ocierr.NameUnknown},
		{"alpine:3.19", "", ocierr.NameUnknown},
		{"not a ref", "", ocierr.NameInvalid},
		{"docker.io/alpine", "", ocierr.NameInvalid},
		{"docker.io/library/*:tag", "", ocierr.NameInvalid},
	} {
		rule, err := r.PinRule(tt.in)
		if tt.code != "" {
			if code, _ := ocierr.CodeOf(err); code != tt.code {
				t.Errorf("PinRule(%q): got %q, %v, want %s", tt.in, rule.Raw, err, tt.code)
			}
			continue
		}
		if err != nil || rule.Raw != tt.want {
			t.Errorf("PinRule(%q): got %q, %v, want %q", tt.in, rule.Raw, err, tt.want)
		}
	}
	rules, err := r.PinRules([]string{"docker.io/alpine:3.19", "ghcr.io/org/**"})
	if err != nil || len(rules) != 2 || !rules[0].Matches("docker.io/library/alpine", "3.19") || !rules[1].Matches("ghcr.io/org/app", "") {
		t.Errorf("PinRules: got %v, %v, want the two rules canonical", rules, err)
	}
	if _, err := r.PinRules([]string{"ghcr.io/org/**", "quay.io/x:1"}); err == nil || !strings.Contains(err.Error(), "quay.io/x:1") {
		t.Errorf("PinRules with an unknown namespace: got %v, want an error naming the rule", err)
	}
}
