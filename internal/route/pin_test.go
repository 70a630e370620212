package route

import "testing"

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
