package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// shapesYAML is the example of upstreams of every shape.
const shapesYAML = `version: 1
auth:
  anonymous: []
  htpasswd_file: %[1]s/htpasswd
  access:
    - {users: [ci], repositories: ["**"], actions: [pull]}
upstreams:
  - name: docker.io
    default: true
    endpoints:
      - url: https://mirror.gcr.io
        capabilities: [pull]
      - url: https://registry-1.docker.io
        capabilities: [pull, resolve]
        credentials: {basic: {username: bot, password_file: %[1]s/hub.token}}
  - name: artifactory.corp.example
    url: https://artifactory.corp.example/artifactory/api/docker/docker-remote
    tls: {ca_file: %[1]s/corp-ca.pem}
    proxy: http://user:s3cret@proxy.corp.example:3128
    max_connections: 16
    max_requests_per_second: 20
  - name: harbor.corp.example
    url: https://harbor.corp.example
    repository_prefix: dockerhub-proxy/
  - name: "*.dkr.ecr.*.amazonaws.com"
    url: "https://{host}"
`

func loadShapes(t *testing.T) *Config {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"htpasswd", "hub.token", "corp-ca.pem"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return mustLoad(t, strings.ReplaceAll(shapesYAML, "%[1]s", dir))
}

func TestEffectiveEndpoints(t *testing.T) {
	c := loadShapes(t)
	hub := c.Upstreams[0].EffectiveEndpoints()
	if len(hub) != 2 || hub[0].Has(CapResolve) || !hub[0].Has(CapPull) || !hub[1].Has(CapResolve) {
		t.Fatalf("docker.io endpoints: %+v", hub)
	}
	if hub[0].Credentials != nil || hub[1].Credentials.Basic == nil || hub[1].Credentials.Basic.Username != "bot" {
		t.Errorf("credentials: mirror %+v, hub %+v; want none on the mirror, bot on the hub", hub[0].Credentials, hub[1].Credentials)
	}
	if hub[0].MaxConnections != DefaultEndpointMaxConnections || hub[0].MaxRequestsPerSecond != 0 {
		t.Errorf("defaults: %+v", hub[0])
	}
	af := c.Upstreams[1].EffectiveEndpoints()
	if len(af) != 1 || af[0].TLS == nil || !*af[0].TLS.SystemRoots || af[0].MaxConnections != 16 || af[0].MaxRequestsPerSecond != 20 || af[0].Proxy == "" {
		t.Errorf("the short form's endpoint: %+v", af)
	}
	if got := c.Upstreams[2].EffectiveEndpoints()[0].RepositoryPrefix; got != "dockerhub-proxy/" {
		t.Errorf("repository_prefix: %q", got)
	}
	ecr := c.Upstreams[3]
	if !ecr.Wildcard() || ecr.MaxHosts != DefaultMaxHosts || ecr.Credentialed() {
		t.Errorf("wildcard: %+v", ecr)
	}
	if !c.Upstreams[0].Credentialed() {
		t.Error("docker.io with a credentialed endpoint is not Credentialed")
	}
	// The namespace-level short form of credentials reaches every endpoint.
	u := Upstream{Name: "ghcr.io", Username: "bot", PasswordFile: "pw", Endpoints: []Endpoint{{URL: "https://a.example"},
		{URL: "https://b.example", Credentials: &Credentials{Anonymous: true}}}}
	eps := u.EffectiveEndpoints()
	if eps[0].Credentials.Basic == nil || eps[1].Credentials.Set() {
		t.Errorf("inherited credentials: %+v, %+v", eps[0].Credentials, eps[1].Credentials)
	}
}

func TestRedactedHidesTheProxyPassword(t *testing.T) {
	out, err := loadShapes(t).Redacted()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "s3cret") {
		t.Errorf("check-config output holds the proxy's password:\n%s", out)
	}
	if !strings.Contains(string(out), "user:"+Redaction+"@proxy.corp.example:3128") {
		t.Errorf("check-config output lacks the redacted proxy:\n%s", out)
	}
}

func TestEndpointProblems(t *testing.T) {
	const head = "version: 1\nupstreams:\n"
	for _, tc := range []struct{ name, yml, want string }{
		{"url and endpoints", `  - {name: a.example, url: "https://a.example", endpoints: [{url: "https://b.example"}]}`,
			"upstreams[0].url: with endpoints: use one"},
		{"capability", `  - {name: a.example, endpoints: [{url: "https://a.example", capabilities: [pull, push]}]}`,
			`upstreams[0].endpoints[0].capabilities[1]: "push", want pull or resolve`},
		{"no resolve", `  - {name: a.example, endpoints: [{url: "https://a.example", capabilities: [pull]}]}`,
			"upstreams[0].endpoints: no endpoint has the resolve capability"},
		{"v2 in the path", `  - {name: a.example, url: "https://a.example/api/v2"}`,
			"upstreams[0].url: \"https://a.example/api/v2\": leave /v2 out of the path"},
		{"endpoint url", `  - {name: a.example, endpoints: [{url: "ftp://a.example"}]}`,
			`upstreams[0].endpoints[0].url: "ftp://a.example" has scheme "ftp"`},
		{"repository prefix", `  - {name: a.example, url: "https://a.example", repository_prefix: proxy}`,
			`upstreams[0].repository_prefix: "proxy" must end with /`},
		{"tls on http", `  - {name: a.example, url: "http://a.example", tls: {ca_file: /etc/hostname}}`,
			"upstreams[0].tls: set on an http:// endpoint"},
		{"tls key alone", `  - {name: a.example, url: "https://a.example", tls: {cert_file: /etc/hostname}}`,
			"upstreams[0].tls: cert_file and key_file go together"},
		{"tls ca missing", `  - {name: a.example, endpoints: [{url: "https://a.example", tls: {ca_file: /nonexistent/ca.pem}}]}`,
			"upstreams[0].endpoints[0].tls.ca_file: stat /nonexistent/ca.pem"},
		{"no roots at all", `  - {name: a.example, url: "https://a.example", tls: {system_roots: false}}`,
			"upstreams[0].tls.system_roots: false without ca_file"},
		{"proxy scheme", `  - {name: a.example, url: "https://a.example", proxy: "ftp://p.example:21"}`,
			`upstreams[0].proxy: "ftp://p.example:21" has scheme "ftp"`},
		{"proxy port", `  - {name: a.example, url: "https://a.example", proxy: "http://p.example"}`,
			"upstreams[0].proxy: \"http://p.example\" needs a port"},
		{"max connections", `  - {name: a.example, endpoints: [{url: "https://a.example", max_connections: -1}]}`,
			"upstreams[0].endpoints[0].max_connections: must be >= 0"},
		{"rate", `  - {name: a.example, url: "https://a.example", max_requests_per_second: -2}`,
			"upstreams[0].max_requests_per_second: must be >= 0"},
		{"two credentials", `  - {name: a.example, endpoints: [{url: "https://a.example", credentials: {keychain: true, anonymous: true}}]}`,
			"upstreams[0].endpoints[0].credentials: want exactly one of basic, keychain and anonymous, got 2"},
		{"credentials and short form", `  - {name: a.example, url: "https://a.example", keychain: true, credentials: {keychain: true}}`,
			"upstreams[0].credentials: with username, password_file or keychain: use one"},
		{"basic password file", `  - {name: a.example, url: "https://a.example", credentials: {basic: {username: bot, password_file: /nonexistent/pw}}}`,
			"upstreams[0].credentials.basic.password_file: stat /nonexistent/pw"},
		{"wildcard without host", `  - {name: "*.registry.example", url: "https://registry.example"}`,
			"upstreams[0].url: \"https://registry.example\": a wildcard namespace's url must hold {host}"},
		{"host outside a wildcard", `  - {name: a.example, url: "https://{host}"}`,
			"upstreams[0].url: \"https://{host}\": {host} is only meaningful in a wildcard namespace"},
		{"wildcard too broad", `  - {name: "*.com", url: "https://{host}"}`,
			"upstreams[0].name: \"*.com\" is not a wildcard host pattern"},
		{"wildcard hosted", `  - {name: "*.registry.example"}`,
			"upstreams[0].url: a wildcard namespace must mirror an upstream"},
		{"wildcard default", `  - {name: "*.registry.example", url: "https://{host}", default: true}`,
			"upstreams[0].default: a wildcard namespace cannot be the default"},
		{"max_hosts", `  - {name: "*.registry.example", url: "https://{host}", max_hosts: 100000}`,
			"upstreams[0].max_hosts: must be 1 to 4096"},
		{"max_hosts without wildcard", `  - {name: a.example, url: "https://a.example", max_hosts: 3}`,
			"upstreams[0].max_hosts: only a wildcard namespace"},
		{"hosted with a proxy", `  - {name: a.example, proxy: "http://p.example:3128"}`,
			"upstreams[0].proxy: a hosted namespace (no url or endpoints) has no upstream"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, head+tc.yml+"\n")
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

func TestReloadTakesEndpointCredentials(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"a", "b", "htpasswd"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	yml := func(pw string) string {
		return "version: 1\nauth: {anonymous: [], htpasswd_file: " + filepath.Join(dir, "htpasswd") + "}\nupstreams:\n  - name: a.example\n    endpoints:\n      - url: https://m.example\n        capabilities: [pull]\n" +
			"      - url: https://a.example\n        credentials: {basic: {username: bot, password_file: " + filepath.Join(dir, pw) + "}}\n"
	}
	running, next := mustLoad(t, yml("a")), mustLoad(t, yml("b"))
	eff := Reloadable(running, next)
	if d := Diff(eff, next); len(d) != 0 {
		t.Errorf("a new password_file on an endpoint needs a restart: %v", d)
	}
}
