package auth

import (
	"strings"
	"testing"
)

// issueRules are the access rules of the issue's example.
func issueRules(t *testing.T, anonymous Actions) *Rules {
	t.Helper()
	r, err := NewRules(anonymous, []Rule{
		{Users: []string{"ci"}, Repositories: []string{"registry.internal/myteam/**"}, Actions: NewActions(Pull, Push)},
		{Users: []string{"replicator"}, Repositories: []string{"**"}, Actions: NewActions(Pull, Push, Delete, Replicate)},
		{Users: []string{AnyUser}, Repositories: []string{"registry.internal/shared/*"}, Actions: NewActions(Push)},
	})
	if err != nil {
		t.Fatalf("NewRules: %v", err)
	}
	return r
}

func TestRulesActions(t *testing.T) {
	all := NewActions(Pull, Push, Delete, Replicate)
	for _, tc := range []struct {
		name       string
		anonymous  Actions
		user, repo string
		want       Actions
	}{
		{"anonymous pull", NewActions(Pull), "", "docker.io/library/alpine", NewActions(Pull)},
		{"anonymous in a hosted namespace", NewActions(Pull), "", "registry.internal/myteam/app", NewActions(Pull)},
		{"anonymous gets no rule, even *", NewActions(Pull), "", "registry.internal/shared/x", NewActions(Pull)},
		{"ci in its team", NewActions(Pull), "ci", "registry.internal/myteam/app", NewActions(Pull, Push)},
		{"ci deep in its team", NewActions(Pull), "ci", "registry.internal/myteam/a/b", NewActions(Pull, Push)},
		{"ci elsewhere: anonymous actions", NewActions(Pull), "ci", "registry.internal/other/app", NewActions(Pull)},
		{"ci in a sibling with the same prefix", NewActions(Pull), "ci", "registry.internal/myteamx/app", NewActions(Pull)},
		{"ci in a mirror", NewActions(Pull), "ci", "docker.io/myteam/app", NewActions(Pull)},
		{"any user rule", NewActions(Pull), "ci", "registry.internal/shared/x", NewActions(Pull, Push)},
		{"any user rule, other user", NewActions(Pull), "someone", "registry.internal/shared/x", NewActions(Pull, Push)},
		{"any user rule is one component", NewActions(Pull), "someone", "registry.internal/shared/x/y", NewActions(Pull)},
		{"replicator everywhere", NewActions(Pull), "replicator", "docker.io/library/alpine", all},
		{"replicator in a team", NewActions(Pull), "replicator", "registry.internal/myteam/app", all},
		{"user names are case-sensitive", NewActions(Pull), "CI", "registry.internal/myteam/app", NewActions(Pull)},
		{"no anonymous: nothing", 0, "", "docker.io/library/alpine", 0},
		{"no anonymous: ci gets its rule only", 0, "ci", "registry.internal/myteam/app", NewActions(Pull, Push)},
		{"no anonymous: ci elsewhere", 0, "ci", "docker.io/library/alpine", 0},
		{"anonymous pull is given to users too", NewActions(Pull), "someone", "docker.io/x/y", NewActions(Pull)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := issueRules(t, tc.anonymous)
			if got := r.Actions(tc.user, tc.repo); got != tc.want {
				t.Errorf("Actions(%q, %q): got %v, want %v", tc.user, tc.repo, got, tc.want)
			}
			for _, a := range []Action{Pull, Push, Delete, Replicate} {
				if got, want := r.Allowed(tc.user, tc.repo, a), tc.want.Has(a); got != want {
					t.Errorf("Allowed(%q, %q, %v): got %v, want %v", tc.user, tc.repo, a, got, want)
				}
			}
		})
	}
}

func TestRulesUnion(t *testing.T) {
	r, err := NewRules(0, []Rule{
		{Users: []string{"a"}, Repositories: []string{"ghcr.io/x/*"}, Actions: NewActions(Pull)},
		{Users: []string{"b", "a"}, Repositories: []string{"quay.io/**", "ghcr.io/**"}, Actions: NewActions(Push)},
		{Users: []string{"a"}, Repositories: []string{"ghcr.io/x/y"}, Actions: NewActions(Delete)},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user, repo string
		want       Actions
	}{
		{"a", "ghcr.io/x/y", NewActions(Pull, Push, Delete)},
		{"a", "ghcr.io/x/z", NewActions(Pull, Push)},
		{"a", "quay.io/x/y", NewActions(Push)},
		{"b", "ghcr.io/x/y", NewActions(Push)},
		{"c", "ghcr.io/x/y", 0},
	} {
		if got := r.Actions(tc.user, tc.repo); got != tc.want {
			t.Errorf("Actions(%q, %q): got %v, want %v", tc.user, tc.repo, got, tc.want)
		}
	}
	if got := r.Anonymous(); got != 0 {
		t.Errorf("Anonymous: got %v, want none", got)
	}
}

func TestNewRulesReportsEveryProblem(t *testing.T) {
	_, err := NewRules(NewActions(Pull), []Rule{
		{Users: nil, Repositories: []string{"ghcr.io/**", "ghcr.io/a**"}, Actions: NewActions(Pull)},
		{Users: []string{"ok", "", "a:b"}, Repositories: nil, Actions: 0},
		{Users: []string{AnyUser}, Repositories: []string{"**"}, Actions: NewActions(Pull)},
	})
	if err == nil {
		t.Fatal("NewRules: got no error")
	}
	want := []string{
		`auth: rules[0].users: empty, want user names or "*" for any authenticated user`,
		`rules[0].repositories[1]: repository glob "ghcr.io/a**": component "a**": "**" must be a whole path component`,
		`rules[1].users[1]: "" is not a user name`,
		`rules[1].users[2]: "a:b" is not a user name`,
		`rules[1].repositories: empty`,
		`rules[1].actions: empty`,
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(lines), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("problem %d: got %q, want it to start with %q", i, lines[i], w)
		}
	}
}

// A rule naming Anonymous grants its repositories to every client, with
// or without credentials, and nothing elsewhere.
func TestAnonymousRuleGrantsItsRepositoriesToEveryone(t *testing.T) {
	r, err := NewRules(0, []Rule{
		{Users: []string{Anonymous}, Repositories: []string{"docker.io/**", "ghcr.io/**"}, Actions: NewActions(Pull)},
		{Users: []string{AnyUser}, Repositories: []string{"private.example/**"}, Actions: NewActions(Pull)},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user, repo string
		want       Actions
	}{
		{"", "docker.io/library/alpine", NewActions(Pull)},
		{"", "ghcr.io/org/app", NewActions(Pull)},
		{"", "private.example/team/app", 0},
		{"alice", "docker.io/library/alpine", NewActions(Pull)},
		{"alice", "private.example/team/app", NewActions(Pull)},
		{"", "quay.io/org/app", 0},
	} {
		if got := r.Actions(tc.user, tc.repo); got != tc.want {
			t.Errorf("Actions(%q, %q): got %v, want %v", tc.user, tc.repo, got, tc.want)
		}
	}
	if !r.AnonymousGrantsAny() {
		t.Error("AnonymousGrantsAny: got false with an anonymous rule")
	}
	none, err := NewRules(0, []Rule{{Users: []string{AnyUser}, Repositories: []string{"**"}, Actions: NewActions(Pull)}})
	if err != nil {
		t.Fatal(err)
	}
	if none.AnonymousGrantsAny() {
		t.Error("AnonymousGrantsAny: got true with no anonymous actions or rules")
	}
}

// Anonymous clients may only pull: push, delete or replicate granted to
// them, globally or by a rule, is refused, naming where.
func TestAnonymousWritesRefused(t *testing.T) {
	if _, err := NewRules(NewActions(Pull, Push), nil); err == nil || !strings.Contains(err.Error(), "anonymous: push: anonymous clients may only pull") {
		t.Errorf("anonymous push: got %v, want a refusal", err)
	}
	_, err := NewRules(0, []Rule{
		{Users: []string{"ci"}, Repositories: []string{"**"}, Actions: NewActions(Pull, Push)},
		{Users: []string{"ci", Anonymous}, Repositories: []string{"docker.io/**"}, Actions: NewActions(Pull, Replicate)},
	})
	if err == nil || !strings.Contains(err.Error(), `rules[1].actions: replicate granted to "anonymous": anonymous clients may only pull`) {
		t.Errorf("anonymous replicate by a rule: got %v, want a refusal naming rules[1]", err)
	}
}

func TestNoRules(t *testing.T) {
	// What a node without an auth section runs: anonymous pull, nothing else.
	r, err := NewRules(NewActions(Pull), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"", "ci"} {
		if got := r.Actions(user, "registry.internal/a"); got != NewActions(Pull) {
			t.Errorf("Actions(%q): got %v, want pull", user, got)
		}
	}
}
