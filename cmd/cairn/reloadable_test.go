package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-mirror/cairn/internal/config"
)

// A file valid on its own but not with what needs a restart kept as it
// runs is refused: a namespace that keeps its upstream credentials (that
// change needs a restart) while the file opens anonymous pulls would
// lend those credentials to anyone.
func TestReloadRefusesAnonymousPullsThroughKeptCredentials(t *testing.T) {
	up := newUpstream(t)
	dir := t.TempDir()
	pw, htpasswd := filepath.Join(dir, "pw"), filepath.Join(dir, "htpasswd")
	writeFile(t, pw, "secret\n")
	htpasswdOf(t, htpasswd, map[string]string{"alice": "alice-pw"})
	file := func(creds, anonymous string) string {
		return fmt.Sprintf(`version: 1
listen: "127.0.0.1:0"
admin_listen: ""
data_dir: %q
log: {level: info, format: json}
auth: {htpasswd_file: %q, anonymous: %s, access: [{users: [alice], repositories: ["**"], actions: [pull]}]}
upstreams: [{name: docker.io, url: "http://%s", default: true%s}]
`, dir, htpasswd, anonymous, up.host(), creds)
	}
	path := filepath.Join(dir, "cairn.yaml")
	writeFile(t, path, file(fmt.Sprintf(", username: u, password_file: %q", pw), "[]"))
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, cfg)
	n.s.reload.source = func() (*config.Config, error) { return loadConfig(path) }
	writeFile(t, path, file("", "[pull]"))
	if _, err := loadConfig(path); err != nil {
		t.Fatalf("the new file on its own: %v, want valid (the test would prove nothing)", err)
	}
	n.s.reload.reload()
	logs := n.logs.String()
	if !strings.Contains(logs, "config reload failed") || !strings.Contains(logs, "upstreams[docker.io].username") {
		t.Errorf("reload log lacks the failure naming the kept credentials:\n%s", logs)
	}
	if resp, _ := get(t, "GET", n.url("/v2/library/a/manifests/v1")); resp.StatusCode != 401 {
		t.Errorf("anonymous pull after the refused reload: %d, want 401", resp.StatusCode)
	}
}
