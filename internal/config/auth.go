package config

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// authActions are the action names of the auth package (auth.ActionNames);
// a test in auth keeps the two lists and the grammars below in step.
var authActions = map[string]bool{"pull": true, "push": true, "delete": true, "replicate": true}

// anyUser in access[].users is any authenticated user.
const anyUser = "*"

// maxGlobLen bounds a repository glob, as the auth package does.
const maxGlobLen = 512

// validateAuth checks the auth section: known actions, an htpasswd_file that
// exists when rules need users, and rules that name users, repositories and
// actions, with globs that start with a configured namespace.
func (c *Config) validateAuth(p *problems) {
	a := c.Auth
	if a.HtpasswdFile != "" {
		p.check("auth.htpasswd_file", checkFile(a.HtpasswdFile))
	}
	checkActions(p, "auth.anonymous", a.Anonymous)
	switch {
	case len(a.Access) > 0 && a.HtpasswdFile == "":
		p.addf("auth.access", "needs auth.htpasswd_file: without users no rule can apply")
	case a.Anonymous != nil && len(a.Anonymous) == 0 && a.HtpasswdFile == "":
		p.addf("auth.anonymous", "empty and no auth.htpasswd_file: no client could do anything")
	}
	names := map[string]string{} // namespace or alias -> namespace
	for _, u := range c.Upstreams {
		for _, a := range u.Aliases {
			names[a] = u.Name
		}
	}
	for _, u := range c.Upstreams {
		names[u.Name] = u.Name
	}
	for i, r := range a.Access {
		r.validate(fmt.Sprintf("auth.access[%d]", i), names, p)
	}
	c.validateToken(p)
}

func (r AccessRule) validate(at string, names map[string]string, p *problems) {
	if len(r.Users) == 0 {
		p.addf(at+".users", "empty, want user names, or %q for any authenticated user", anyUser)
	}
	for j, u := range r.Users {
		if u != anyUser && !validUser(u) {
			p.addf(fmt.Sprintf("%s.users[%d]", at, j), "%q is not a user name: empty, not UTF-8, or holding ':' or a control character", u)
		}
	}
	if len(r.Repositories) == 0 {
		p.addf(at+".repositories", "empty, want globs of canonical names like registry.internal/team/**")
	}
	for j, g := range r.Repositories {
		path := fmt.Sprintf("%s.repositories[%d]", at, j)
		if msg := checkRepoGlob(g); msg != "" {
			p.check(path, msg)
			continue
		}
		ns, _, more := strings.Cut(g, "/")
		switch {
		case strings.Contains(ns, "*"):
			// a wildcard over namespaces
		case names[ns] == "":
			p.addf(path, "%q does not start with a configured namespace (canonical names: <namespace>/<repo>)", g)
		case names[ns] != ns:
			p.addf(path, "%q starts with an alias of %s: canonical names use the namespace's name", g, names[ns])
		}
		if !more && ns != "**" {
			p.addf(path, "%q matches no canonical name (<namespace>/<repo>): want %s/** for the whole namespace", g, ns)
		}
	}
	if len(r.Actions) == 0 {
		p.addf(at+".actions", "empty, want some of pull, push, delete, replicate")
	}
	checkActions(p, at+".actions", r.Actions)
}

func checkActions(p *problems, at string, actions []string) {
	for j, a := range actions {
		if !authActions[a] {
			p.addf(fmt.Sprintf("%s[%d]", at, j), "unknown action %q, want pull, push, delete or replicate", a)
		}
	}
}

// validUser is the auth package's user name rule: non-empty UTF-8 without
// ':' or control characters, what both htpasswd and Basic auth can carry.
func validUser(u string) bool {
	if u == "" || !utf8.ValidString(u) {
		return false
	}
	return !strings.ContainsFunc(u, func(r rune) bool { return r == ':' || unicode.IsControl(r) })
}

// checkRepoGlob says why s is not a repository glob the auth package
// accepts, or "": '/'-separated components, none empty; "**" only as a
// whole component; otherwise lower-case letters, digits, '.', '_', '-', ':'
// and '*'.
func checkRepoGlob(s string) string {
	if s == "" {
		return "empty repository glob"
	}
	if len(s) > maxGlobLen {
		return fmt.Sprintf("repository glob of %d bytes, want at most %d", len(s), maxGlobLen)
	}
	for c := range strings.SplitSeq(s, "/") {
		switch {
		case c == "":
			return fmt.Sprintf("repository glob %q: an empty path component (a leading, trailing or double '/')", s)
		case c != "**" && strings.Contains(c, "**"):
			return fmt.Sprintf("repository glob %q: component %q: \"**\" must be a whole path component", s, c)
		}
		if i := strings.IndexFunc(c, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("._-:*", r))
		}); i >= 0 {
			return fmt.Sprintf("repository glob %q: component %q: only lower-case letters, digits, '.', '_', '-', ':' and '*' can appear", s, c)
		}
	}
	return ""
}
