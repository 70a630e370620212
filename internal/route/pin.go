package route

import (
	"fmt"
	"regexp"
	"strings"
)

// PinRule keeps content from eviction: an exact reference
// ("docker.io/library/alpine:3.19", "ghcr.io/org/app@sha256:...") pins that
// image whole, fetched ahead if need be; a repository glob
// ("ghcr.io/org/**", "docker.io/library/*") pins every tag cached there.
type PinRule struct {
	Raw  string
	Repo string // canonical repository, or a glob of them
	Ref  string // tag or digest; "" for a glob
	glob *regexp.Regexp
}

// ParsePinRule reads a rule; names are canonical (<namespace>/<repo>).
func ParsePinRule(s string) (PinRule, error) {
	r := PinRule{Raw: s}
	if strings.Contains(s, "*") {
		if strings.ContainsAny(s, "@:") && !strings.Contains(strings.SplitN(s, "/", 2)[0], ":") {
			return r, fmt.Errorf("pin %q: a glob names repositories, not tags", s)
		}
		r.Repo = s
		r.glob = globRegexp(s)
		return r, nil
	}
	if repo, dgst, ok := strings.Cut(s, "@"); ok {
		r.Repo, r.Ref = repo, dgst
	} else if i := strings.LastIndex(s, ":"); i > strings.LastIndex(s, "/") {
		r.Repo, r.Ref = s[:i], s[i+1:]
	} else {
		return r, fmt.Errorf("pin %q: want <namespace>/<repo>:<tag>, @<digest>, or a glob", s)
	}
	if err := ValidReference(r.Ref); err != nil {
		return r, fmt.Errorf("pin %q: %w", s, err)
	}
	return r, ValidName(r.Repo)
}

// Matches reports whether the rule covers canonical repository repo and tag.
func (r PinRule) Matches(repo, tag string) bool {
	if r.glob != nil {
		return r.glob.MatchString(repo)
	}
	return r.Repo == repo && r.Ref == tag
}

// globRegexp: "**" is any number of path components, "*" one.
func globRegexp(glob string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(glob); i++ {
		switch {
		case strings.HasPrefix(glob[i:], "/**"):
			b.WriteString("(/.*)?")
			i += 2
		case glob[i] == '*':
			b.WriteString("[^/]*")
		default:
			b.WriteString(regexp.QuoteMeta(glob[i : i+1]))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}
