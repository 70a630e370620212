package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const fullYAML = `version: 1
listen: ":5000"                 # OCI Distribution API
admin_listen: "127.0.0.1:9090"  # /metrics /healthz /readyz /debug/pprof
data_dir: ./data
site: default
log:
  level: info                   # debug | info | warn | error
  format: text                  # text | json
cache:
  tag_ttl: 5m
  serve_stale: true
  fill_idle_timeout: 2m
upstreams:
  - name: docker.io
    url: https://registry-1.docker.io
    aliases: [index.docker.io, registry-1.docker.io]
    library_prefix: true
    default: true
    username: ""
    password_file: ""
    tag_ttl: 10m
  - name: ghcr.io
    url: https://ghcr.io
  - name: registry.internal
`

func load(t *testing.T, yml string) (*Config, error) {
	t.Helper()
	return Load(strings.NewReader(yml))
}

func mustLoad(t *testing.T, yml string) *Config {
	t.Helper()
	c, err := load(t, yml)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func TestLoadFull(t *testing.T) {
	c := mustLoad(t, fullYAML)
	want := &Config{
		Version: 1, Listen: ":5000", AdminListen: "127.0.0.1:9090", DataDir: "./data", Site: "default",
		Log: Log{Level: "info", Format: "text"},
		Cache: Cache{
			TagTTL: Duration(5 * time.Minute), ServeStale: ptr(true), FillIdleTimeout: Duration(2 * time.Minute),
			ServeStaleOn404: ptr(false), HeadTimeout: Duration(3 * time.Second), RequestTimeout: Duration(15 * time.Second), ReferrersTTL: Duration(30 * time.Second),
			BreakerFailures: 5, BreakerCooldown: Duration(30 * time.Second),
			EvictHigh: 0.90, EvictLow: 0.80, ChangeLogRetention: Duration(DefaultChangeLogRetention), DefaultPlatform: DefaultPlatform,
		},
		Auth: Auth{Anonymous: []string{"pull"}},
		Uploads: Uploads{Expire: Duration(DefaultUploadExpire), MaxSize: DefaultUploadMaxSize,
			MaxSessions: DefaultUploadMaxSessions, MaxSessionsPerUser: DefaultUploadMaxSessionsPerUser},
		Limits: Limits{MaxConnections: DefaultMaxConnections, MaxHeaderBytes: DefaultMaxHeaderBytes,
			MinSendRate: ptr(ByteSize(DefaultMinSendRate)), MinSendWindow: Duration(DefaultMinSendWindow)},
		Upstreams: []Upstream{
			{
				Name: "docker.io", URL: "https://registry-1.docker.io",
				Aliases:       []string{"index.docker.io", "registry-1.docker.io"},
				LibraryPrefix: ptr(true), Default: true,
				TagTTL: ptr(Duration(10 * time.Minute)), ServeStale: ptr(true), FillIdleTimeout: ptr(Duration(2 * time.Minute)),
				ServeStaleOn404: ptr(false), HeadTimeout: ptr(Duration(3 * time.Second)), RequestTimeout: ptr(Duration(15 * time.Second)), ReferrersTTL: ptr(Duration(30 * time.Second)),
			},
			{
				Name: "ghcr.io", URL: "https://ghcr.io", LibraryPrefix: ptr(false),
				TagTTL: ptr(Duration(5 * time.Minute)), ServeStale: ptr(true), FillIdleTimeout: ptr(Duration(2 * time.Minute)),
				ServeStaleOn404: ptr(false), HeadTimeout: ptr(Duration(3 * time.Second)), RequestTimeout: ptr(Duration(15 * time.Second)), ReferrersTTL: ptr(Duration(30 * time.Second)),
			},
			{
				Name: "registry.internal", LibraryPrefix: ptr(false),
				TagTTL: ptr(Duration(5 * time.Minute)), ServeStale: ptr(true), FillIdleTimeout: ptr(Duration(2 * time.Minute)),
				ServeStaleOn404: ptr(false), HeadTimeout: ptr(Duration(3 * time.Second)), RequestTimeout: ptr(Duration(15 * time.Second)), ReferrersTTL: ptr(Duration(30 * time.Second)),
			},
		},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got %+v, want %+v", c, want)
	}
	if got := []bool{c.Upstreams[0].Mirror(), c.Upstreams[2].Mirror()}; got[0] != true || got[1] != false {
		t.Errorf("Mirror() of docker.io, registry.internal: got %v, want [true false]", got)
	}
	roundTrip(t, c)
}

func TestLoadDefaults(t *testing.T) {
	c := mustLoad(t, "version: 1\nupstreams:\n  - name: docker.io\n    url: https://registry-1.docker.io\n  - name: quay.io\n    url: https://quay.io\n    serve_stale: false\n")
	for _, tc := range []struct {
		field     string
		got, want any
	}{
		{"listen", c.Listen, DefaultListen},
		{"admin_listen", c.AdminListen, DefaultAdminListen},
		{"data_dir", c.DataDir, DefaultDataDir},
		{"site", c.Site, DefaultSite},
		{"log.level", c.Log.Level, "info"},
		{"log.format", c.Log.Format, "text"},
		{"cache.tag_ttl", c.Cache.TagTTL.D(), 5 * time.Minute},
		{"cache.serve_stale", *c.Cache.ServeStale, true},
		{"cache.fill_idle_timeout", c.Cache.FillIdleTimeout.D(), 2 * time.Minute},
		{"upstreams[0].library_prefix", *c.Upstreams[0].LibraryPrefix, true},
		{"upstreams[0].tag_ttl", c.Upstreams[0].TagTTL.D(), 5 * time.Minute},
		{"upstreams[0].serve_stale", *c.Upstreams[0].ServeStale, true},
		{"upstreams[0].fill_idle_timeout", c.Upstreams[0].FillIdleTimeout.D(), 2 * time.Minute},
		{"upstreams[1].library_prefix", *c.Upstreams[1].LibraryPrefix, false},
		{"upstreams[1].serve_stale", *c.Upstreams[1].ServeStale, false},
		{"uploads.expire", c.Uploads.Expire.D(), 24 * time.Hour},
		{"cache.change_log_retention", c.Cache.ChangeLogRetention.D(), 168 * time.Hour},
		{"cache.default_platform", c.Cache.DefaultPlatform, "linux/amd64"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.field, tc.got, tc.want)
		}
	}
}

func TestAdminListenEmptyDisables(t *testing.T) {
	c := mustLoad(t, "version: 1\nadmin_listen: \"\"\nupstreams: [{name: ghcr.io, url: 'https://ghcr.io'}]\n")
	if c.AdminListen != "" {
		t.Errorf("admin_listen: got %q, want \"\" (disabled)", c.AdminListen)
	}
	roundTrip(t, c)
}

func TestDefault(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: got %v, want nil", err)
	}
	var names []string
	for _, u := range c.Upstreams {
		names = append(names, u.Name)
		if !u.Mirror() {
			t.Errorf("%s: got hosted, want a mirror", u.Name)
		}
	}
	want := []string{"docker.io", "ghcr.io", "gcr.io", "quay.io", "registry.k8s.io", "public.ecr.aws", "mcr.microsoft.com"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("namespaces: got %v, want %v", names, want)
	}
	hub := c.Upstreams[0]
	if !hub.Default || !*hub.LibraryPrefix {
		t.Errorf("docker.io: got default=%v library_prefix=%v, want true, true", hub.Default, *hub.LibraryPrefix)
	}
	for _, u := range c.Upstreams[1:] {
		if u.Default || *u.LibraryPrefix {
			t.Errorf("%s: got default=%v library_prefix=%v, want false, false", u.Name, u.Default, *u.LibraryPrefix)
		}
	}
	if Default() == c || &Default().Upstreams[0] == &c.Upstreams[0] {
		t.Errorf("Default: got a shared config, want a fresh copy per call")
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	yml := `version: 1
listen: ":5000"
colour: blue
cache:
  tag_ttl: 5 minutes
upstreams:
  - name: docker.io
    url: https://registry-1.docker.io/v2/
    aliases: [index.docker.io]
    default: true
  - name: ghcr
    url: https://ghcr.io
  - name: mirror.example.com
    url: https://mirror.example.com
    aliases: [index.docker.io]
    default: true
    fill_idle_timeout: -1s
`
	_, err := load(t, yml)
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Load: got %v, want a *ValidationError", err)
	}
	for _, want := range []string{
		`colour: unknown key "colour" (line 3)`,
		`cache.tag_ttl: "5 minutes" is not a duration like 90s or 5m (line 5)`,
		`upstreams[0].url: "https://registry-1.docker.io/v2/": leave /v2 out of the path`,
		`upstreams[1].name: "ghcr" is not a registry host`,
		`upstreams[2].aliases[0]: "index.docker.io" is already used by upstreams[0].aliases[0] (line 15)`,
		`upstreams[2].default: upstreams[0] is already the default namespace`,
		`upstreams[2].fill_idle_timeout: must be > 0, got -1s (line 17)`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q; got:\n%v", want, err)
		}
	}
	if got, want := len(ve.Problems), 7; got != want {
		t.Errorf("problems: got %d, want %d:\n%v", got, want, err)
	}
}

func TestLoadProblems(t *testing.T) {
	const ups = "upstreams: [{name: ghcr.io, url: 'https://ghcr.io'}]\n"
	for _, tc := range []struct {
		name, yml, want string
	}{
		{"empty", "", "version: got 0, want 1"},
		{"version 2", "version: 2\n" + ups, "version: got 2, want 1 (line 1)"},
		{"version string", "version: one\n" + ups, "version: want a whole number, got str `one` (line 1)"},
		{"no upstreams", "version: 1\n", "upstreams: none, want at least one namespace"},
		{"bad listen", "version: 1\nlisten: 5000\n" + ups, `listen: "5000" is not host:port`},
		{"bad admin port", "version: 1\nadmin_listen: ':99999'\n" + ups, `admin_listen: ":99999" has a bad port`},
		{"log level", "version: 1\nlog: {level: verbose}\n" + ups, `log.level: got "verbose", want debug, info, warn or error`},
		{"log format", "version: 1\nlog: {format: xml}\n" + ups, `log.format: got "xml", want text or json`},
		{"site", "version: 1\nsite: 'eu west'\n" + ups, `site: "eu west" is not a site name`},
		{"zero duration", "version: 1\ncache: {tag_ttl: 0s}\n" + ups, "cache.tag_ttl: must be > 0, got 0s"},
		{"upload expiry", "version: 1\nuploads: {expire: -1h}\n" + ups, "uploads.expire: must be > 0, got -1h"},
		{"change log retention", "version: 1\ncache: {change_log_retention: -1h}\n" + ups, "cache.change_log_retention: must be > 0, got -1h"},
		{"default platform", "version: 1\ncache: {default_platform: amd64}\n" + ups, `cache.default_platform: "amd64" is not a platform like linux/amd64`},
		{"uploads key", "version: 1\nuploads: {expires: 1h}\n" + ups, `uploads.expires: unknown key "expires"`},
		{"number duration", "version: 1\ncache: {fill_idle_timeout: 300}\n" + ups, `cache.fill_idle_timeout: "300" is not a duration`},
		{"list duration", "version: 1\ncache: {tag_ttl: [1m]}\n" + ups, "cache.tag_ttl: want a duration like 90s or 5m, got a list"},
		{"bool", "version: 1\ncache: {serve_stale: sometimes}\n" + ups, "cache.serve_stale: want true or false, got str `sometimes`"},
		{"unknown nested key", "version: 1\nupstreams:\n  - name: ghcr.io\n    tag_tll: 1m\n", `upstreams[0].tag_tll: unknown key "tag_tll" (line 4)`},
		{"duplicate key", "version: 1\nversion: 1\n" + ups, `version: duplicate key, first at line 1 (line 2)`},
		{"two documents", "version: 1\n" + ups + "---\nversion: 1\n", "(top level): the file holds more than one YAML document"},
		{"syntax", "version: 1\n  listen: [\n", "(top level): not valid YAML"},
		{"not a mapping", "- version\n", "(top level): want a mapping, got seq"},
		{"upstreams mapping", "version: 1\nupstreams:\n  name: ghcr.io\n", "upstreams: want a list of upstreams, got map (line 3)"},
		{"uppercase name", "version: 1\nupstreams: [{name: GHCR.io}]\n", `upstreams[0].name: "GHCR.io" must be lower case`},
		{"scheme in name", "version: 1\nupstreams: [{name: 'https://ghcr.io'}]\n", `upstreams[0].name: "https://ghcr.io" is not a host name: no scheme`},
		{"empty name", "version: 1\nupstreams: [{url: 'https://ghcr.io'}]\n", "upstreams[0].name: empty"},
		{"duplicate name", "version: 1\nupstreams: [{name: ghcr.io}, {name: GHCR.IO}]\n", `upstreams[1].name: "GHCR.IO" is already used by upstreams[0].name`},
		{"bad alias", "version: 1\nupstreams: [{name: docker.io, aliases: [hub]}]\n", `upstreams[0].aliases[0]: "hub" is not a registry host`},
		{"username alone", "version: 1\nupstreams: [{name: ghcr.io, url: 'https://ghcr.io', username: bot}]\n", "upstreams[0].username: needs password_file"},
		{"password_file alone", "version: 1\nupstreams: [{name: ghcr.io, url: 'https://ghcr.io', password_file: /nonexistent/pw}]\n", "upstreams[0].password_file: needs username"},
		{"password_file missing", "version: 1\nupstreams: [{name: ghcr.io, url: 'https://ghcr.io', username: bot, password_file: /nonexistent/pw}]\n", "upstreams[0].password_file: stat /nonexistent/pw: no such file or directory"},
		{"keychain and username", "version: 1\nupstreams: [{name: ghcr.io, url: 'https://ghcr.io', keychain: true, username: bot}]\n", "upstreams[0].keychain: excludes username and password_file"},
		{"credentials on hosted", "version: 1\nupstreams: [{name: registry.internal, keychain: true}]\n", "upstreams[0].keychain: a hosted namespace (no url) has no upstream to log in to"},
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

func TestPasswordFile(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := mustLoad(t, "version: 1\nupstreams: [{name: ghcr.io, url: 'https://ghcr.io', username: bot, password_file: '"+pw+"', anonymous_pulls_use_credentials: true}]\n")
	out, err := c.Redacted()
	if err != nil {
		t.Fatalf("Redacted: %v", err)
	}
	if strings.Contains(string(out), "s3cret") {
		t.Errorf("Redacted: got the password file's content in\n%s", out)
	}
	roundTrip(t, c)
}

func TestCheckHost(t *testing.T) {
	for _, tc := range []struct {
		host string
		ok   bool
	}{
		{"docker.io", true},
		{"localhost", true},
		{"localhost:5000", true},
		{"registry:5000", true},
		{"10.0.0.1:443", true},
		{"[::1]", false},      // IPv6 literals cannot be routed by path,
		{"[::1]:5000", false}, // so the router refuses them at serve

		{"my-registry.example.com", true},
		{"registry", false},
		{"library", false},
		{"Docker.io", false},
		{"docker.io/library", false},
		{"https://docker.io", false},
		{"docker io", false},
		{"docker.io.", false},
		{"-docker.io", false},
		{"docker_hub.io", false},
		{"localhost:0", false},
		{"localhost:99999", false},
		{"localhost:", false},
		{"::1", false},
		{"[1.2.3.4]", false},
		{"[::1]x", false},
	} {
		if got := checkHost(tc.host) == ""; got != tc.ok {
			t.Errorf("checkHost(%q): got ok=%v (%s), want ok=%v", tc.host, got, checkHost(tc.host), tc.ok)
		}
	}
}

func TestCheckURL(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://ghcr.io", true},
		{"https://ghcr.io/", true},
		{"http://localhost:5001", true},
		{"https://[::1]:443", true},
		{"ghcr.io", false},
		{"ftp://ghcr.io", false},
		{"https://", false},
		{"https://:443", false},
		{"https://ghcr.io/v2", false},
		{"https://ghcr.io?x=1", false},
		{"https://ghcr.io?", false},
		{"https://ghcr.io#frag", false},
		{"https://user:pw@ghcr.io", false},
		{"https://ghcr.io:", false},
		{"https://ghcr.io:0", false},
		{"mailto:me@ghcr.io", false},
		{"https://ghcr io", false},
	} {
		if got := checkURL(tc.url) == ""; got != tc.ok {
			t.Errorf("checkURL(%q): got ok=%v (%s), want ok=%v", tc.url, got, checkURL(tc.url), tc.ok)
		}
	}
	if msg := checkURL("https://user:pw@ghcr.io"); strings.Contains(msg, "pw") {
		t.Errorf("checkURL: got %q, want the password left out", msg)
	}
}

func TestCheckListen(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{":5000", true},
		{":0", true},
		{"127.0.0.1:9090", true},
		{"[::1]:9090", true},
		{"localhost:9090", true},
		{"", false},
		{"5000", false},
		{":http", false},
		{":65536", false},
		{"bad host:80", false},
	} {
		if got := checkListen(tc.addr) == ""; got != tc.ok {
			t.Errorf("checkListen(%q): got ok=%v (%s), want ok=%v", tc.addr, got, checkListen(tc.addr), tc.ok)
		}
	}
}

func TestDurationString(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{5 * time.Minute, "5m"},
		{90 * time.Second, "1m30s"},
		{time.Hour, "1h"},
		{time.Hour + 30*time.Second, "1h0m30s"},
		{1500 * time.Millisecond, "1.5s"},
	} {
		if got := Duration(tc.d).String(); got != tc.want {
			t.Errorf("Duration(%v).String(): got %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestAdminTokenFile(t *testing.T) {
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("t0ken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := mustLoad(t, "version: 1\nadmin: {token_file: '"+tok+"'}\nupstreams: [{name: ghcr.io, url: 'https://ghcr.io'}]\n")
	if c.Admin.TokenFile != tok {
		t.Errorf("admin.token_file: got %q, want %q", c.Admin.TokenFile, tok)
	}
	roundTrip(t, c)
	for name, path := range map[string]string{"missing": "/nonexistent/token", "directory": filepath.Dir(tok)} {
		_, err := load(t, "version: 1\nadmin: {token_file: '"+path+"'}\nupstreams: [{name: ghcr.io, url: 'https://ghcr.io'}]\n")
		if err == nil || !strings.Contains(err.Error(), "admin.token_file: ") {
			t.Errorf("%s token_file: got %v, want a problem naming admin.token_file", name, err)
		}
	}
	if c := mustLoad(t, "version: 1\nupstreams: [{name: ghcr.io, url: 'https://ghcr.io'}]\n"); c.Admin.TokenFile != "" {
		t.Errorf("admin.token_file defaults to %q, want empty", c.Admin.TokenFile)
	}
}
