package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// credentialed is a config with a namespace that logs in upstream (hub),
// one that is public (ghcr.io) and a hosted one, under the auth section
// given, with %h the path of an htpasswd file.
func credentialed(t *testing.T, auth, hubExtra string) string {
	t.Helper()
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("token"), 0o600); err != nil {
		t.Fatal(err)
	}
	auth = strings.ReplaceAll(auth, "%h", htpasswdFile(t))
	return "version: 1\n" + auth + `upstreams:
  - name: docker.io
    url: https://registry-1.docker.io
    username: acme-ci
    password_file: '` + pw + `'
` + hubExtra + `  - name: ghcr.io
    url: https://ghcr.io
  - name: registry.internal
`
}

// Anonymous callers must not pull through a namespace's credentials
// unless the config says so: every way anonymous pulls reach a
// credentialed namespace is refused, naming the namespace, what grants the
// pull and the two ways out.
func TestAnonymousPullThroughCredentialsRefused(t *testing.T) {
	for _, tc := range []struct {
		name, auth, want string
	}{
		{"no auth section", "", "auth.anonymous (pull on every namespace"},
		{"auth section without anonymous", "auth: {htpasswd_file: '%h'}\n", "auth.anonymous (pull on every namespace"},
		{"anonymous pull everywhere", "auth: {htpasswd_file: '%h', anonymous: [pull]}\n", "auth.anonymous"},
		{"a rule naming anonymous on the namespace", "auth:\n  htpasswd_file: '%h'\n  anonymous: []\n  access: [{users: [anonymous], repositories: ['docker.io/library/**'], actions: [pull]}]\n", "auth.access[0]"},
		{"a rule naming anonymous on every name", "auth:\n  htpasswd_file: '%h'\n  anonymous: []\n  access: [{users: [ci], repositories: ['**'], actions: [pull]}, {users: [ci, anonymous], repositories: ['**'], actions: [pull]}]\n", "auth.access[1]"},
		{"a rule naming anonymous on a namespace wildcard", "auth:\n  htpasswd_file: '%h'\n  anonymous: []\n  access: [{users: [anonymous], repositories: ['docker.*/**'], actions: [pull]}]\n", "auth.access[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, credentialed(t, tc.auth, ""))
			if err == nil {
				t.Fatal("Load: accepted, want the namespace refused")
			}
			msg := err.Error()
			for _, want := range []string{"upstreams[0]: namespace docker.io logs in upstream (username acme-ci)", tc.want,
				"require users for it", "anonymous_pulls_use_credentials: true"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error lacks %q:\n%s", want, msg)
				}
			}
		})
	}
}

func TestAnonymousPullThroughCredentialsAccepted(t *testing.T) {
	for _, tc := range []struct{ name, auth, hub string }{
		{"stated shared account", "", "    anonymous_pulls_use_credentials: true\n"},
		{"mixed: public mirrors open, the account behind login",
			"auth:\n  htpasswd_file: '%h'\n  anonymous: []\n  access:\n    - {users: [anonymous], repositories: ['ghcr.io/**'], actions: [pull]}\n    - {users: ['*'], repositories: ['docker.io/**'], actions: [pull]}\n", ""},
		{"anonymous pull only elsewhere, rule without htpasswd", "auth:\n  anonymous: []\n  access: [{users: [anonymous], repositories: ['ghcr.io/**', 'registry.internal/**'], actions: [pull]}]\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := load(t, credentialed(t, tc.auth, tc.hub)); err != nil {
				t.Fatalf("Load: %v", err)
			}
		})
	}
}

// A keychain namespace is credentialed too.
func TestAnonymousPullThroughKeychainRefused(t *testing.T) {
	_, err := load(t, "version: 1\nupstreams: [{name: ghcr.io, url: 'https://ghcr.io', keychain: true}]\n")
	if err == nil || !strings.Contains(err.Error(), "namespace ghcr.io logs in upstream (keychain: true)") {
		t.Fatalf("Load: got %v, want the keychain namespace refused", err)
	}
}

func TestAnonymousPullsUseCredentialsNeedsCredentials(t *testing.T) {
	for _, ns := range []string{"{name: ghcr.io, url: 'https://ghcr.io', anonymous_pulls_use_credentials: true}", "{name: registry.internal, anonymous_pulls_use_credentials: true}"} {
		_, err := load(t, "version: 1\nupstreams: ["+ns+"]\n")
		if err == nil || !strings.Contains(err.Error(), "upstreams[0].anonymous_pulls_use_credentials: the namespace has no upstream credentials") {
			t.Errorf("%s: got %v, want a refusal", ns, err)
		}
	}
}

// Anonymous callers never get push, delete or replicate, globally or by a
// rule; the refusal names the rule.
func TestAnonymousWritesRefusedNamingTheRule(t *testing.T) {
	for _, tc := range []struct{ auth, want string }{
		{"auth: {htpasswd_file: '%h', anonymous: [pull, push]}\n", `auth.anonymous[1]: "push" granted to anonymous clients: they may only pull`},
		{"auth: {htpasswd_file: '%h', anonymous: [delete]}\n", `auth.anonymous[0]: "delete" granted to anonymous clients`},
		{"auth:\n  htpasswd_file: '%h'\n  anonymous: []\n  access: [{users: [ci], repositories: ['**'], actions: [pull]}, {users: [anonymous], repositories: ['ghcr.io/**'], actions: [pull, replicate]}]\n",
			`auth.access[1].actions[1]: "replicate" granted to anonymous clients`},
	} {
		_, err := load(t, credentialed(t, tc.auth, "    anonymous_pulls_use_credentials: true\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want it to contain %q", err, tc.want)
		}
	}
}

func TestTrustedProxiesChecked(t *testing.T) {
	c := mustLoad(t, "version: 1\nauth: {trusted_proxies: ['10.0.0.0/8', '192.0.2.1', '::1/128']}\n"+authUpstreams)
	if len(c.Auth.TrustedProxies) != 3 {
		t.Errorf("trusted_proxies: got %v", c.Auth.TrustedProxies)
	}
	_, err := load(t, "version: 1\nauth: {trusted_proxies: ['10.0.0.0/33']}\n"+authUpstreams)
	if err == nil || !strings.Contains(err.Error(), `auth.trusted_proxies[0]: "10.0.0.0/33" is not a CIDR`) {
		t.Errorf("got %v, want auth.trusted_proxies[0] refused", err)
	}
}

// A node's session cap below the per-user default caps each user alike,
// rather than refusing a field the file never set.
func TestUploadSessionCapBelowPerUserDefault(t *testing.T) {
	c := mustLoad(t, "version: 1\nuploads: {max_sessions: 16}\n"+authUpstreams)
	if c.Uploads.MaxSessionsPerUser != 16 {
		t.Errorf("max_sessions_per_user: got %d, want 16", c.Uploads.MaxSessionsPerUser)
	}
	if _, err := load(t, "version: 1\nuploads: {max_sessions: 16, max_sessions_per_user: 32}\n"+authUpstreams); err == nil {
		t.Error("an explicit per-user cap above max_sessions: accepted, want refused")
	}
}
