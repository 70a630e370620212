package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Reloadable takes from the file what may change while the node runs and
// keeps the rest as it runs: the two diffs name exactly those fields.
func TestReloadableSplitsTheFile(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	running := mustLoad(t, fmt.Sprintf(`version: 1
listen: "127.0.0.1:5000"
data_dir: /var/lib/cairn
cache: {max_size: 1GiB}
upstreams:
  - {name: docker.io, url: "http://127.0.0.1:9", default: true}
  - {name: ghcr.io, url: "http://127.0.0.1:9", username: u, password_file: %q, anonymous_pulls_use_credentials: true}
`, pw))
	next := mustLoad(t, fmt.Sprintf(`version: 1
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
	eff := Reloadable(running, next)
	applied := strings.Join(Diff(running, eff), " ")
	wantApplied := "cache.tag_ttl auth.trusted_proxies upstreams[docker.io].anonymous_pulls_use_credentials upstreams[docker.io].tag_ttl " +
		"upstreams[ghcr.io].username upstreams[ghcr.io].tag_ttl upstreams[ghcr.io].ratelimit_floor"
	if applied != wantApplied {
		t.Errorf("applied:\n got %s\nwant %s", applied, wantApplied)
	}
	restart := strings.Join(Diff(eff, next), " ")
	wantRestart := "listen site cache.max_size upstreams[docker.io].url upstreams[docker.io].username upstreams[docker.io].password_file upstreams[quay.io] (added)"
	if restart != wantRestart {
		t.Errorf("needs a restart:\n got %s\nwant %s", restart, wantRestart)
	}
	if running.Listen != "127.0.0.1:5000" || running.Upstreams[1].Username != "u" {
		t.Error("Reloadable changed the running config it was given")
	}
}

// The certificate's files are reloaded while TLS stays on; turning TLS on
// or off needs a restart.
func TestReloadableCertificateFiles(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a.pem", "a-key.pem", "b.pem", "b-key.pem"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	file := func(tls string) *Config {
		return mustLoad(t, "version: 1\n"+tls+"upstreams: [{name: docker.io, url: \"http://127.0.0.1:9\", default: true}]\n")
	}
	tlsOf := func(name string) string {
		return fmt.Sprintf("tls: {cert_file: %q, key_file: %q}\n", filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem"))
	}
	for _, tt := range []struct {
		what, running, next, applied, restart string
	}{
		{"new files", tlsOf("a"), tlsOf("b"), "tls.cert_file tls.key_file", ""},
		{"TLS turned on", "", tlsOf("b"), "", "tls.cert_file tls.key_file tls.min_version"},
		{"TLS turned off", tlsOf("a"), "", "", "tls.cert_file tls.key_file tls.min_version"},
		{"the same file", tlsOf("a"), tlsOf("a"), "", ""},
	} {
		running, next := file(tt.running), file(tt.next)
		eff := Reloadable(running, next)
		if got := strings.Join(Diff(running, eff), " "); got != tt.applied {
			t.Errorf("%s: applied %q, want %q", tt.what, got, tt.applied)
		}
		if got := strings.Join(Diff(eff, next), " "); got != tt.restart {
			t.Errorf("%s: needs a restart %q, want %q", tt.what, got, tt.restart)
		}
	}
}

// A namespace that starts or stops using credentials keeps them as it
// runs: the cache's tenancy was set up for one or the other.
func TestReloadableKeepsCredentialsWhenTheirUseChanges(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	anon := mustLoad(t, "version: 1\nupstreams: [{name: docker.io, url: \"http://127.0.0.1:9\", default: true}]\n")
	creds := mustLoad(t, fmt.Sprintf("version: 1\nupstreams: [{name: docker.io, url: \"http://127.0.0.1:9\", default: true, username: u, password_file: %q, anonymous_pulls_use_credentials: true}]\n", pw))
	if eff := Reloadable(anon, creds); eff.Upstreams[0].Credentialed() {
		t.Error("an anonymous namespace took credentials on reload")
	}
	if eff := Reloadable(creds, anon); !eff.Upstreams[0].Credentialed() {
		t.Error("a namespace with credentials dropped them on reload")
	}
	if d := Diff(creds, creds); d != nil {
		t.Errorf("Diff of a config with itself: got %v, want nil", d)
	}
}
