package auth

import (
	"errors"
	"fmt"
)

// AnyUser in Rule.Users stands for every authenticated user (never for an
// anonymous client). No htpasswd user may be called "*".
const AnyUser = "*"

// Anonymous in Rule.Users stands for every client, with or without
// credentials: what a rule grants it is the floor everyone stands on. No
// htpasswd user may be called "anonymous".
const Anonymous = "anonymous"

// AnonymousActions is what a rule may grant Anonymous: only pull. An
// anonymous push, delete or replicate would let anyone rewrite content.
const AnonymousActions = Actions(Pull)

// Rule grants Actions on the repositories matching any of Repositories to
// the users named in Users.
type Rule struct {
	// Users are htpasswd user names, or AnyUser.
	Users []string
	// Repositories are globs on canonical names (<namespace>/<repo>): '*'
	// matches within one path component, a "**" component any number of
	// components ("registry.internal/myteam/**", "**" for every name).
	Repositories []string
	Actions      Actions
}

// Rules answers what a user may do to a repository. It is immutable and
// safe for concurrent use.
type Rules struct {
	anonymous Actions
	rules     []rule
}

type rule struct {
	users     map[string]bool
	anyUser   bool
	anonymous bool
	globs     []glob
	actions   Actions
}

// NewRules returns the rules that grant anonymous to every client on every
// repository, and what each rule grants to the users it names. Every
// problem is reported at once, each naming the rule and field it is about
// (`rules[1].repositories[0]: ...`): an empty list of users, repositories
// or actions, a user name that an htpasswd file cannot hold, a repository
// glob that is not one, more than AnonymousActions for anonymous clients.
func NewRules(anonymous Actions, rules []Rule) (*Rules, error) {
	r := &Rules{anonymous: anonymous}
	var errs []error
	if extra := anonymous &^ AnonymousActions; extra != 0 {
		errs = append(errs, fmt.Errorf("anonymous: %s: anonymous clients may only pull", extra))
	}
	for i, in := range rules {
		out, err := newRule(fmt.Sprintf("rules[%d]", i), in)
		errs = append(errs, err...)
		r.rules = append(r.rules, out)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return r, nil
}

func newRule(at string, in Rule) (rule, []error) {
	out := rule{users: map[string]bool{}, actions: in.Actions}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(in.Users) == 0 {
		bad("%s.users: empty, want user names or %q for any authenticated user", at, AnyUser)
	}
	for j, u := range in.Users {
		switch {
		case u == AnyUser:
			out.anyUser = true
		case u == Anonymous:
			out.anonymous = true
		case validUser(u):
			out.users[u] = true
		default:
			bad("%s.users[%d]: %q is not a user name: empty, not UTF-8, or holding ':' or a control character", at, j, u)
		}
	}
	if len(in.Repositories) == 0 {
		bad("%s.repositories: empty, want globs of canonical names like registry.internal/team/**", at)
	}
	for j, s := range in.Repositories {
		g, err := parseGlob(s)
		if err != nil {
			bad("%s.repositories[%d]: %w", at, j, err)
			continue
		}
		out.globs = append(out.globs, g)
	}
	if in.Actions == 0 {
		bad("%s.actions: empty, want some of pull, push, delete, replicate", at)
	}
	if extra := in.Actions &^ AnonymousActions; out.anonymous && extra != 0 {
		bad("%s.actions: %s granted to %q: anonymous clients may only pull", at, extra, Anonymous)
	}
	return out, errs
}

// Actions returns what user may do to the canonical repository repo: the
// anonymous actions, and the union of the actions of every rule that names
// Anonymous, or, for an authenticated user, the user or AnyUser, and has a
// glob matching repo. user is "" for an anonymous client, and must
// otherwise be a user whose password the Authenticator has checked.
func (r *Rules) Actions(user, repo string) Actions {
	s := r.anonymous
	for _, rl := range r.rules {
		mine := rl.anonymous || user != "" && (rl.anyUser || rl.users[user])
		if s&rl.actions == rl.actions || !mine {
			continue // nothing to add, or not this user's rule
		}
		for _, g := range rl.globs {
			if g.match(repo) {
				s |= rl.actions
				break
			}
		}
	}
	return s
}

// Allowed reports whether user ("" for anonymous) may take action a on the
// canonical repository repo; see Actions.
func (r *Rules) Allowed(user, repo string, a Action) bool {
	return r.Actions(user, repo).Has(a)
}

// Anonymous returns the actions every client may take on every repository,
// with or without credentials.
func (r *Rules) Anonymous() Actions { return r.anonymous }

// AnonymousGrantsAny reports whether an anonymous client may do anything
// anywhere: by the anonymous actions or by a rule that names Anonymous.
func (r *Rules) AnonymousGrantsAny() bool {
	if r.anonymous != 0 {
		return true
	}
	for _, rl := range r.rules {
		if rl.anonymous {
			return true
		}
	}
	return false
}
