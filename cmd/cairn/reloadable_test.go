package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-mirror/cairn/internal/config"
)

// reloadable takes from the file what may change while the node runs and
// keeps the rest as it runs: the two diffs name exactly those fields.
func TestReloadableSplitsTheFile(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	writeFile(t, pw, "secret\n")
	running := loadYAML(t, fmt.Sprintf(`version: 1
listen: "127.0.0.1:5000"
data_dir: /var/lib/cairn
cache: {max_size: 1GiB}
upstreams:
  - {name: docker.io, url: "http://127.0.0.1:9", default: true}
  - {name: ghcr.io, url: "http://127.0.0.1:9", username: u, password_file: %q, anonymous_pulls_use_credentials: true}
`, pw))
	next := loadYAML(t, fmt.Sprintf(`version: 1
listen: "127.0.0.1:5001"
data_dir: /var/lib/cairn
site: elsewhere
cache: {max_size: 2GiB, tag_ttl: 1m}
auth: {anonymous: [pull], trusted_proxies: [10.0.0.0/8]}
upstreams:
  - {name: docker.io, url: "http://127.0.0.1:8", default: true, username: u, password_file: %q, anonymous_pulls_use_credentials: true}
  - {name: ghcr.io, url: "http://127.0.0.1:9", username: v, password_file: %q, anonymous_pulls_use_credentials: true, ratelimit_floor: 3}
  - {name: quay.io, url: "http://127.0.0.1:9"}
`, pw, pw))
	eff := reloadable(running, next)
	applied := strings.Join(configDiff(running, eff), " ")
	wantApplied := "cache.tag_ttl auth.trusted_proxies upstreams[docker.io].anonymous_pulls_use_credentials upstreams[docker.io].tag_ttl " +
		"upstreams[ghcr.io].username upstreams[ghcr.io].tag_ttl upstreams[ghcr.io].ratelimit_floor"
	if applied != wantApplied {
		t.Errorf("applied:\n got %s\nwant %s", applied, wantApplied)
	}
	restart := strings.Join(configDiff(eff, next), " ")
	wantRestart := "listen site cache.max_size upstreams[docker.io].url upstreams[docker.io].username upstreams[docker.io].password_file upstreams[quay.io] (added)"
	if restart != wantRestart {
		t.Errorf("needs a restart:\n got %s\nwant %s", restart, wantRestart)
	}
	if running.Listen != "127.0.0.1:5000" || running.Upstreams[1].Username != "u" {
		t.Error("reloadable changed the running config it was given")
	}
}

func loadYAML(t *testing.T, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Load(strings.NewReader(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

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
