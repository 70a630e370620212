package route

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/cairn-mirror/cairn/internal/ocierr"
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

// PinRule reads a pin rule (the grammar of ParsePinRule) whose first
// component names a configured namespace or one of its aliases, and
// returns it canonical, as the rest of cairn keys things: the namespace's
// own name, and, in an exact reference to a one-component repository,
// library/ where the namespace adds it to a pull (docker.io/alpine:3.19
// is docker.io/library/alpine:3.19, as a pull of alpine:3.19 is). A glob
// names repositories as they are stored and gets no library/. The
// result's Raw is the canonical rule. A rule that does not parse wraps
// ocierr.NameInvalid; one whose first component names no configured
// namespace, ocierr.NameUnknown.
func (r *Router) PinRule(s string) (PinRule, error) {
	rule, err := ParsePinRule(s)
	if err != nil {
		return PinRule{Raw: s}, fmt.Errorf("%w: %w", err, ocierr.NameInvalid)
	}
	host, rest, ok := strings.Cut(rule.Repo, "/")
	ns := r.byHost[strings.ToLower(host)]
	if !ok || ns == nil {
		return PinRule{Raw: s}, fmt.Errorf("pin %q: %q is not a configured namespace (want <namespace>/<repo>): %w", s, host, ocierr.NameUnknown)
	}
	canonical := ns.Name + "/" + rest
	if rule.glob == nil {
		sep := ":"
		if IsDigest(rule.Ref) {
			sep = "@"
		}
		canonical = ns.Name + "/" + ns.repoName(rest) + sep + rule.Ref
	}
	return ParsePinRule(canonical)
}

// PinRules reads rules with PinRule, in order; the error names the first
// rule that is refused.
func (r *Router) PinRules(rules []string) ([]PinRule, error) {
	out := make([]PinRule, 0, len(rules))
	for _, s := range rules {
		rule, err := r.PinRule(s)
		if err != nil {
			return nil, err
		}
		out = append(out, rule)
	}
	return out, nil
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
