package main

import (
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-mirror/cairn/internal/config"
	"github.com/cairn-mirror/cairn/internal/route"
)

// runCLI runs the cairn command line in process and returns its stdout.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := newApp(&out, &errOut).Run(append([]string{"cairn"}, args...))
	return out.String(), err
}

func effective(t *testing.T, args ...string) *config.Config {
	t.Helper()
	out, err := runCLI(t, append([]string{"check-config"}, args...)...)
	if err != nil {
		t.Fatalf("check-config %v: %v", args, err)
	}
	cfg, err := config.Load(strings.NewReader(out))
	if err != nil {
		t.Fatalf("check-config output does not load back: %v\n%s", err, out)
	}
	return cfg
}

func TestPrecedenceFlagEnvFileDefault(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	yaml := "version: 1\nlisten: \"127.0.0.1:7001\"\ndata_dir: /from/file\nupstreams: [{name: docker.io, url: \"https://registry-1.docker.io\", default: true}]\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	// default only
	if got := effective(t).Listen; got != config.DefaultListen {
		t.Errorf("default listen %q, want %q", got, config.DefaultListen)
	}
	// file over default
	cfg := effective(t, "-c", file)
	if cfg.Listen != "127.0.0.1:7001" || cfg.DataDir != "/from/file" || cfg.AdminListen != config.DefaultAdminListen {
		t.Errorf("file: listen %q data_dir %q admin %q", cfg.Listen, cfg.DataDir, cfg.AdminListen)
	}
	// env over file
	t.Setenv("CAIRN_LISTEN", "127.0.0.1:7002")
	t.Setenv("CAIRN_LOG_FORMAT", "json")
	cfg = effective(t, "-c", file)
	if cfg.Listen != "127.0.0.1:7002" || cfg.Log.Format != "json" || cfg.DataDir != "/from/file" {
		t.Errorf("env: listen %q format %q data_dir %q", cfg.Listen, cfg.Log.Format, cfg.DataDir)
	}
	// flag over env
	cfg = effective(t, "-c", file, "--listen", "127.0.0.1:7003", "--data-dir", "/from/flag", "--admin-listen", "")
	if cfg.Listen != "127.0.0.1:7003" || cfg.DataDir != "/from/flag" || cfg.AdminListen != "" {
		t.Errorf("flag: listen %q data_dir %q admin %q", cfg.Listen, cfg.DataDir, cfg.AdminListen)
	}
	// the config file itself from the environment
	t.Setenv("CAIRN_CONFIG", file)
	if got := effective(t).DataDir; got != "/from/file" {
		t.Errorf("CAIRN_CONFIG: data_dir %q, want /from/file", got)
	}
}

func TestBadConfigNamesEveryField(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bad.yaml")
	yaml := `version: 1
listen: ":5000"
cache: {tag_ttl: soon}
bogus: 1
upstreams:
  - {name: notahost, url: "ftp://x"}
  - {name: a.io, url: "https://a.io", default: true}
  - {name: b.io, url: "https://b.io", default: true}
`
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := runCLI(t, "check-config", "-c", file)
	if err == nil {
		t.Fatal("check-config accepted a bad file")
	}
	for _, want := range []string{"cache.tag_ttl", "bogus", "upstreams[0].name", "upstreams[0].url", "default"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	if _, err := runCLI(t, "check-config", "--log-level", "loud"); err == nil || !strings.Contains(err.Error(), "log.level") {
		t.Errorf("a bad --log-level: got %v, want an error naming log.level", err)
	}
}

func TestVersion(t *testing.T) {
	out, err := runCLI(t, "version")
	if err != nil || !strings.HasPrefix(out, "cairn "+version) {
		t.Errorf("version: %q, %v", out, err)
	}
}

func TestPinRulesCanonical(t *testing.T) {
	cfg, err := config.Load(strings.NewReader(`version: 1
cache: {pin: ["docker.io/alpine:3.19", "docker.io/org/app:v1", "ghcr.io/app:v1", "docker.io/library/*"]}
upstreams:
  - {name: docker.io, url: "https://registry-1.docker.io", default: true}
  - {name: ghcr.io, url: "https://ghcr.io"}
`))
	if err != nil {
		t.Fatal(err)
	}
	var routes []route.Namespace
	for _, u := range cfg.Upstreams {
		routes = append(routes, routeNamespace(u))
	}
	router, err := route.NewRouter(routes)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := router.PinRules(cfg.Cache.Pin)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rules {
		got = append(got, r.Raw)
	}
	want := "docker.io/library/alpine:3.19 docker.io/org/app:v1 ghcr.io/app:v1 docker.io/library/*"
	if strings.Join(got, " ") != want {
		t.Errorf("got %v, want %s", got, want)
	}
	if _, err := config.Load(strings.NewReader("version: 1\ncache: {pin: [\"quay.io/x:1\"]}\nupstreams: [{name: docker.io, url: \"https://registry-1.docker.io\"}]\n")); err == nil || !strings.Contains(err.Error(), "cache.pin[0]") {
		t.Errorf("a rule for an unconfigured namespace: %v, want a cache.pin[0] problem", err)
	}
}

// A listen address already taken is a clear error, and the data dir is
// released (a second start on it works).
func TestServeAddressInUse(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := testConfig(t, t.TempDir(), "127.0.0.1:9", "127.0.0.1:9")
	cfg.Listen = taken.Addr().String()
	log, _ := newLogger("error", "text", io.Discard)
	if _, err := newServer(cfg, log); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("listen on a taken address: %v, want an address-in-use error", err)
	}
	cfg.Listen = "127.0.0.1:0"
	s, err := newServer(cfg, log)
	if err != nil {
		t.Fatalf("the data dir was not released after the failed start: %v", err)
	}
	s.close()
}
