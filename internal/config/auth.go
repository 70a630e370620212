package config

import (
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// authActions are the action names of the auth package (auth.ActionNames);
// a test in auth keeps the two lists and the grammars below in step.
var authActions = map[string]bool{"pull": true, "push": true, "delete": true, "replicate": true}

// anyUser in access[].users is any authenticated user; anonymousUser is
// every client, with or without credentials (auth.AnyUser, auth.Anonymous).
const (
	anyUser       = "*"
	anonymousUser = "anonymous"
)

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
	checkAnonymousActions(p, "auth.anonymous", a.Anonymous)
	users := a.HtpasswdFile != "" || c.TLS.ClientCAFile != ""
	switch {
	case !users && slices.ContainsFunc(a.Access, AccessRule.namesUsers):
		p.addf("auth.access", "needs auth.htpasswd_file (or tls.client_ca_file): without users no rule but one naming only %q can apply", anonymousUser)
	case len(a.Anonymous) == 0 && !users && !slices.ContainsFunc(a.Access, AccessRule.namesAnonymous):
		p.addf("auth.anonymous", "empty, no rule names %q and no auth.htpasswd_file: no client could do anything", anonymousUser)
	}
	for i, cidr := range a.TrustedProxies {
		p.check(fmt.Sprintf("auth.trusted_proxies[%d]", i), checkCIDR(cidr))
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
	if r.namesAnonymous() {
		checkAnonymousActions(p, at+".actions", r.Actions)
	}
}

// namesAnonymous reports whether the rule grants every client.
func (r AccessRule) namesAnonymous() bool { return slices.Contains(r.Users, anonymousUser) }

// namesUsers reports whether the rule names a user who must log in.
func (r AccessRule) namesUsers() bool {
	return slices.ContainsFunc(r.Users, func(u string) bool { return u != anonymousUser })
}

// checkAnonymousActions refuses what anonymous clients must never get:
// anonymous push or delete would let anyone change hosted content, and
// anonymous replicate would let anyone rewrite mirror tags.
func checkAnonymousActions(p *problems, at string, actions []string) {
	for j, a := range actions {
		if a != "pull" && authActions[a] {
			p.addf(fmt.Sprintf("%s[%d]", at, j), "%q granted to anonymous clients: they may only pull (an anonymous %s would let anyone who reaches the port change what this node serves)", a, a)
		}
	}
}

// checkCIDR says why s is not a CIDR or a single address, or "".
func checkCIDR(s string) string {
	if _, err := netip.ParsePrefix(s); err == nil {
		return ""
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return ""
	}
	return fmt.Sprintf("%q is not a CIDR like 10.0.0.0/8 or an address like 192.0.2.1", s)
}

// validateAnonymousCredentials refuses a config in which anonymous clients
// could pull from a mirror namespace that logs in upstream: anyone who
// reaches the port would read whatever that account can read. Either the
// namespace is behind users, or it states anonymous_pulls_use_credentials.
func (c *Config) validateAnonymousCredentials(p *problems) {
	for i, u := range c.Upstreams {
		at := fmt.Sprintf("upstreams[%d]", i)
		if u.AnonymousPullsUseCredentials {
			if !u.Mirror() || !u.Credentialed() {
				p.addf(at+".anonymous_pulls_use_credentials", "the namespace has no upstream credentials (username or keychain) to share")
			}
			continue
		}
		if !u.Mirror() || !u.Credentialed() {
			continue
		}
		via := c.anonymousPullGrant(u.Name)
		if via == "" {
			continue
		}
		p.addf(at, "namespace %s logs in upstream (%s), and %s lets anonymous clients pull from it: anyone who reaches this node would read whatever that account can. "+
			"Either require users for it (auth.anonymous: [] and an access rule granting pull on the other namespaces to %q), "+
			"or, for a deliberate shared-account mirror, set anonymous_pulls_use_credentials: true on it", u.Name, u.credentialKind(), via, anonymousUser)
	}
}

// anonymousPullGrant names what lets anonymous clients pull from namespace
// ns (auth.anonymous, or the first access rule naming anonymous with a
// glob that reaches into ns), or "".
func (c *Config) anonymousPullGrant(ns string) string {
	if slices.Contains(c.Auth.Anonymous, "pull") {
		return "auth.anonymous (pull on every namespace; [pull] is its default when the key or the whole auth section is absent)"
	}
	for i, r := range c.Auth.Access {
		if !r.namesAnonymous() || !slices.Contains(r.Actions, "pull") {
			continue
		}
		for _, g := range r.Repositories {
			first, _, _ := strings.Cut(g, "/")
			if ok, _ := path.Match(first, ns); ok || first == "**" {
				return fmt.Sprintf("auth.access[%d]", i)
			}
		}
	}
	return ""
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
