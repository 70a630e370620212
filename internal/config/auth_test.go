package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// authUpstreams are the namespaces the auth tests' globs name.
const authUpstreams = `upstreams:
  - name: docker.io
    url: https://registry-1.docker.io
    aliases: [index.docker.io]
  - name: registry.internal
`

// htpasswdFile writes an htpasswd file (its content is not read by config)
// and returns its path.
func htpasswdFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "htpasswd")
	// A real bcrypt entry (cost 4) of the password "s3cret"; config only
	// checks that the file exists.
	entry := "ci:$2a$04$UYMqq33Gu5bQYn1eCCHzReAoXovSyM9xIPikTM9gJMQngXDt.H2py\n"
	if err := os.WriteFile(path, []byte(entry), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestAuthSectionLoadsRoundTripsAndRedacts(t *testing.T) {
	pw := htpasswdFile(t)
	c := mustLoad(t, `version: 1
auth:
  htpasswd_file: '`+pw+`'   # bcrypt entries (htpasswd -B)
  anonymous: [pull]
  access:
    - users: ["ci"]
      repositories: ["registry.internal/myteam/**"]
      actions: [pull, push]
    - users: ["replicator"]
      repositories: ["**"]
      actions: [pull, push, delete, replicate]
`+authUpstreams)
	want := Auth{
		HtpasswdFile: pw,
		Anonymous:    []string{"pull"},
		Access: []AccessRule{
			{Users: []string{"ci"}, Repositories: []string{"registry.internal/myteam/**"}, Actions: []string{"pull", "push"}},
			{Users: []string{"replicator"}, Repositories: []string{"**"}, Actions: []string{"pull", "push", "delete", "replicate"}},
		},
	}
	if !reflect.DeepEqual(c.Auth, want) {
		t.Errorf("auth: got %+v, want %+v", c.Auth, want)
	}
	roundTrip(t, c)
	out, err := c.Redacted()
	if err != nil {
		t.Fatalf("Redacted: %v", err)
	}
	if strings.Contains(string(out), "$2a$") {
		t.Errorf("Redacted: got the htpasswd file's content in\n%s", out)
	}
	if !strings.Contains(string(out), "htpasswd_file: "+pw) {
		t.Errorf("Redacted: got no htpasswd_file (a path, not a secret) in\n%s", out)
	}
}

func TestAuthAnonymousDefault(t *testing.T) {
	for _, tc := range []struct {
		name, auth string
		want       []string
	}{
		{"no section", "", []string{"pull"}},
		{"empty section", "auth: {}\n", []string{"pull"}},
		{"null section", "auth:\n", []string{"pull"}},
		{"key absent", "auth: {htpasswd_file: '%s'}\n", []string{"pull"}},
		{"null key", "auth: {htpasswd_file: '%s', anonymous: null}\n", []string{"pull"}},
		{"none", "auth: {htpasswd_file: '%s', anonymous: []}\n", []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			auth := strings.ReplaceAll(tc.auth, "%s", htpasswdFile(t))
			c := mustLoad(t, "version: 1\n"+auth+authUpstreams)
			if !reflect.DeepEqual(c.Auth.Anonymous, tc.want) {
				t.Errorf("auth.anonymous: got %#v, want %#v", c.Auth.Anonymous, tc.want)
			}
			roundTrip(t, c)
		})
	}
}

func TestAuthProblems(t *testing.T) {
	pw := htpasswdFile(t)
	withFile := func(rest string) string {
		return "version: 1\nauth:\n  htpasswd_file: '" + pw + "'\n" + rest + authUpstreams
	}
	for _, tc := range []struct {
		name, yml, want string
	}{
		{"unknown anonymous action", "version: 1\nauth: {anonymous: [pull, read]}\n" + authUpstreams,
			`auth.anonymous[1]: unknown action "read", want pull, push, delete or replicate (line 2)`},
		{"anonymous not a list", "version: 1\nauth: {anonymous: pull}\n" + authUpstreams,
			"auth.anonymous: want a list of strings, got str `pull` (line 2)"},
		{"access not a list", withFile("  access: {users: [ci]}\n"),
			"auth.access: want a list of access rules, got map (line 4)"},
		{"unknown key", withFile("  acess: []\n"), `auth.acess: unknown key "acess" (line 4)`},
		{"htpasswd missing", "version: 1\nauth: {htpasswd_file: /nonexistent/htpasswd}\n" + authUpstreams,
			"auth.htpasswd_file: stat /nonexistent/htpasswd: no such file or directory"},
		{"htpasswd directory", "version: 1\nauth: {htpasswd_file: '" + filepath.Dir(pw) + "'}\n" + authUpstreams,
			"auth.htpasswd_file: " + filepath.Dir(pw) + " is a directory"},
		{"access without htpasswd", "version: 1\nauth:\n  access: [{users: [ci], repositories: ['**'], actions: [push]}]\n" + authUpstreams,
			`auth.access: needs auth.htpasswd_file (or tls.client_ca_file): without users no rule but one naming only "anonymous" can apply (line 3)`},
		{"nobody can do anything", "version: 1\nauth: {anonymous: []}\n" + authUpstreams,
			`auth.anonymous: empty, no rule names "anonymous" and no auth.htpasswd_file: no client could do anything`},
		{"no users", withFile("  access: [{repositories: ['**'], actions: [pull]}]\n"),
			"auth.access[0].users: empty, want user names"},
		{"empty users", withFile("  access: [{users: [], repositories: ['**'], actions: [pull]}]\n"),
			"auth.access[0].users: empty, want user names"},
		{"empty user", withFile("  access: [{users: [ci, ''], repositories: ['**'], actions: [pull]}]\n"),
			`auth.access[0].users[1]: "" is not a user name`},
		{"user with colon", withFile("  access: [{users: ['a:b'], repositories: ['**'], actions: [pull]}]\n"),
			`auth.access[0].users[0]: "a:b" is not a user name`},
		{"no repositories", withFile("  access: [{users: [ci], actions: [pull]}]\n"),
			"auth.access[0].repositories: empty, want globs"},
		{"no actions", withFile("  access: [{users: [ci], repositories: ['**']}]\n"),
			"auth.access[0].actions: empty, want some of pull, push, delete, replicate"},
		{"unknown action", withFile("  access: [{users: [ci], repositories: ['**'], actions: [pull, admin]}]\n"),
			`auth.access[0].actions[1]: unknown action "admin"`},
		{"empty glob", withFile("  access: [{users: [ci], repositories: [''], actions: [pull]}]\n"),
			"auth.access[0].repositories[0]: empty repository glob"},
		{"half a double star", withFile("  access: [{users: [ci], repositories: ['registry.internal/team**'], actions: [pull]}]\n"),
			`auth.access[0].repositories[0]: repository glob "registry.internal/team**": component "team**": "**" must be a whole path component`},
		{"trailing slash", withFile("  access: [{users: [ci], repositories: ['registry.internal/team/'], actions: [pull]}]\n"),
			"an empty path component"},
		{"upper case", withFile("  access: [{users: [ci], repositories: ['registry.internal/Team/**'], actions: [pull]}]\n"),
			`component "Team": only lower-case letters`},
		{"tag in glob", withFile("  access: [{users: [ci], repositories: ['registry.internal/app@sha256'], actions: [pull]}]\n"),
			`component "app@sha256": only lower-case letters`},
		{"unknown namespace", withFile("  access: [{users: [ci], repositories: ['registry.internl/team/**'], actions: [pull]}]\n"),
			`auth.access[0].repositories[0]: "registry.internl/team/**" does not start with a configured namespace`},
		{"alias", withFile("  access: [{users: [ci], repositories: ['index.docker.io/library/*'], actions: [pull]}]\n"),
			`"index.docker.io/library/*" starts with an alias of docker.io`},
		{"namespace only", withFile("  access: [{users: [ci], repositories: ['registry.internal'], actions: [pull]}]\n"),
			`"registry.internal" matches no canonical name (<namespace>/<repo>): want registry.internal/**`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.yml)
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Load: got %v, want a *ValidationError", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got:\n%v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestAuthReportsEveryProblem(t *testing.T) {
	yml := `version: 1
auth:
  anonymous: [pull, pulll]
  access:
    - users: []
      repositories: ["registry.internal/**", "registry.internal/a**"]
      actions: [push, admin]
    - users: [ci]
      repositories: []
      actions: []
` + authUpstreams
	_, err := load(t, yml)
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Load: got %v, want a *ValidationError", err)
	}
	for _, want := range []string{
		`auth.anonymous[1]: unknown action "pulll", want pull, push, delete or replicate (line 3)`,
		`auth.access: needs auth.htpasswd_file (or tls.client_ca_file): without users no rule but one naming only "anonymous" can apply (line 4)`,
		`auth.access[0].users: empty, want user names, or "*" for any authenticated user (line 5)`,
		`auth.access[0].repositories[1]: repository glob "registry.internal/a**": component "a**": "**" must be a whole path component (line 6)`,
		`auth.access[0].actions[1]: unknown action "admin", want pull, push, delete or replicate (line 7)`,
		`auth.access[1].repositories: empty, want globs of canonical names like registry.internal/team/** (line 9)`,
		`auth.access[1].actions: empty, want some of pull, push, delete, replicate (line 10)`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q; got:\n%v", want, err)
		}
	}
	if got, want := len(ve.Problems), 7; got != want {
		t.Errorf("problems: got %d, want %d:\n%v", got, want, err)
	}
}

func TestCheckRepoGlob(t *testing.T) {
	for _, tc := range []struct {
		glob string
		ok   bool
	}{
		{"**", true},
		{"*/**", true},
		{"docker.io/library/*", true},
		{"registry.internal/myteam/**", true},
		{"localhost:5000/**/app", true},
		{"ghcr.io/org-*/app_v2.x", true},
		{"**/**", true},
		{"", false},
		{"/docker.io/x", false},
		{"docker.io//x", false},
		{"docker.io/x/", false},
		{"docker.io/x**", false},
		{"docker.io/***", false},
		{"docker.io/X", false},
		{"docker.io/x?", false},
		{"docker.io/x y", false},
		{"docker.io/x:1.0@sha256:abc", false},
		{strings.Repeat("a", maxGlobLen+1), false},
	} {
		if got := checkRepoGlob(tc.glob) == ""; got != tc.ok {
			t.Errorf("checkRepoGlob(%q): got ok=%v (%s), want ok=%v", tc.glob, got, checkRepoGlob(tc.glob), tc.ok)
		}
	}
}
