package auth

import (
	"errors"
	"fmt"
)

// AnyUser in Rule.Users stands for every authenticated user (never for an
// anonymous client). No htpasswd user may be called "*".
const AnyUser = "*"

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
	users   map[string]bool
	anyUser bool
	globs   []glob
	actions Actions
}

// NewRules returns the rules that grant anonymous to every client, and what
// each rule grants to the users it names. Every problem is reported at once,
// each naming the rule and field it is about (`rules[1].repositories[0]:
// ...`): an empty list of users, repositories or actions, a user name that
// an htpasswd file cannot hold, a repository glob that is not one.
func NewRules(anonymous Actions, rules []Rule) (*Rules, error) {
	r := &Rules{anonymous: anonymous}
	var errs []error
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
	return out, errs
}

// Actions returns what user may do to the canonical repository repo: the
// anonymous actions, and, for an authenticated user, the union of the
// actions of every rule that names the user (or AnyUser) and has a glob
// matching repo. user is "" for an anonymous client, and must otherwise be
// a user whose password the Authenticator has checked.
func (r *Rules) Actions(user, repo string) Actions {
	s := r.anonymous
	if user == "" {
		return s
	}
	for _, rl := range r.rules {
		if s&rl.actions == rl.actions || !(rl.anyUser || rl.users[user]) {
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

// Anonymous returns the actions every client may take, with or without
// credentials.
func (r *Rules) Anonymous() Actions { return r.anonymous }
