package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/cairn-mirror/cairn/internal/config"
)

// internal/config checks the auth section without importing this package,
// so it keeps its own copy of the action names, the user name rule and the
// glob grammar. These tests keep the copies in step: config accepts a
// value exactly when this package does.

// configVerdicts loads a config with one access rule of user, glob and
// action, and reports whether config found a problem with each of them.
// ok is false when YAML cannot carry the strings unchanged.
func configVerdicts(t *testing.T, htpasswd, user, glob, action string) (userOK, globOK, actionOK, ok bool) {
	t.Helper()
	doc := map[string]any{
		"version": 1,
		"auth": map[string]any{
			"htpasswd_file": htpasswd,
			"access": []any{map[string]any{
				"users": []string{user}, "repositories": []string{glob}, "actions": []string{action},
			}},
		},
		"upstreams": []any{map[string]any{"name": "registry.internal"}},
	}
	data, err := yaml.Marshal(doc)
	if err != nil {
		return false, false, false, false
	}
	var raw config.Config
	if yaml.Unmarshal(data, &raw) != nil || len(raw.Auth.Access) != 1 {
		return false, false, false, false
	}
	if r := raw.Auth.Access[0]; len(r.Users) != 1 || r.Users[0] != user || len(r.Repositories) != 1 ||
		r.Repositories[0] != glob || len(r.Actions) != 1 || r.Actions[0] != action {
		return false, false, false, false
	}
	_, err = config.Load(strings.NewReader(string(data)))
	var ve *config.ValidationError
	if err != nil && !errors.As(err, &ve) {
		t.Fatalf("Load: %v", err)
	}
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	return !strings.Contains(msg, "auth.access[0].users[0]:"),
		!strings.Contains(msg, "auth.access[0].repositories[0]: "+"repository glob") && !strings.Contains(msg, "auth.access[0].repositories[0]: empty"),
		!strings.Contains(msg, "auth.access[0].actions[0]:"),
		true
}

func writeHtpasswd(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(path, []byte("ci:"+hashOf(t, "pw")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func checkAgreement(t *testing.T, htpasswd, user, glob, action string) {
	t.Helper()
	userOK, globOK, actionOK, ok := configVerdicts(t, htpasswd, user, glob, action)
	if !ok {
		return
	}
	if want := user == AnyUser || validUser(user); userOK != want {
		t.Errorf("user %q: config says ok=%v, auth says %v", user, userOK, want)
	}
	if _, err := parseGlob(glob); globOK != (err == nil) {
		t.Errorf("glob %q: config says ok=%v, auth says %v", glob, globOK, err)
	}
	if _, err := ParseAction(action); actionOK != (err == nil) {
		t.Errorf("action %q: config says ok=%v, auth says %v", action, actionOK, err)
	}
}

var agreementSeeds = []struct{ user, glob, action string }{
	{"ci", "registry.internal/myteam/**", "pull"},
	{"*", "**", "push"},
	{"", "registry.internal/a**", "delete"},
	{"a:b", "registry.internal//x", "replicate"},
	{"jürgen", "registry.internal/Team", "Pull"},
	{"c\ti", "registry.internal/x?", "admin"},
	{"c i", "*/**", "*"},
	{"ci", "registry.internal/x/", ""},
	{"ci", "", "pull,push"},
	{"ci", "registry.internal/" + strings.Repeat("a", 600), "pull"},
	{"ci", "registry.internal/app@sha256:abc", "read"},
	{"ci", "registry.internal/**/app", "write"},
}

func TestConfigAgreesWithAuth(t *testing.T) {
	htpasswd := writeHtpasswd(t)
	for _, s := range agreementSeeds {
		checkAgreement(t, htpasswd, s.user, s.glob, s.action)
	}
	for _, name := range ActionNames() {
		if _, _, actionOK, _ := configVerdicts(t, htpasswd, "ci", "**", name); !actionOK {
			t.Errorf("action %q: config refuses it", name)
		}
	}
}

func FuzzConfigAgreesWithAuth(f *testing.F) {
	for _, s := range agreementSeeds {
		f.Add(s.user, s.glob, s.action)
	}
	htpasswd := writeHtpasswd(f)
	f.Fuzz(func(t *testing.T, user, glob, action string) {
		checkAgreement(t, htpasswd, user, glob, action)
	})
}
