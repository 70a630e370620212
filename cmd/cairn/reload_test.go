package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"

	"github.com/cairn-mirror/cairn/internal/devca"
)

// hupChild is `cairn serve -c FILE` in a child process (startChild),
// whose config file a test rewrites and reloads with a real SIGHUP.
type hupChild struct {
	cmd     *exec.Cmd
	logs    *syncBuffer
	cfg     string // the config file
	addr    string // the API's address
	dataDir string
}

// startHUPChild writes a config of body under a header (listen on a free
// loopback port, no admin listener, JSON logs) and starts cairn on it.
func startHUPChild(t *testing.T, body string) *hupChild {
	t.Helper()
	c := &hupChild{cfg: filepath.Join(t.TempDir(), "cairn.yaml"), addr: freeAddr(t), dataDir: t.TempDir()}
	c.write(t, body)
	c.cmd = startChild(t, c.cfg, c.addr) // a TLS listener answers its plain GET with a 400: up
	c.logs = c.cmd.Stderr.(*syncBuffer)
	return c
}

func (c *hupChild) header(listen, dataDir string) string {
	return fmt.Sprintf("version: 1\nlisten: %q\nadmin_listen: \"\"\ndata_dir: %q\nlog: {level: info, format: json}\n", listen, dataDir)
}

// write replaces the config file: the header, then body.
func (c *hupChild) write(t *testing.T, body string) {
	t.Helper()
	writeFile(t, c.cfg, c.header(c.addr, c.dataDir)+body)
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// logLine is one JSON log line of the child.
type logLine map[string]any

func (l logLine) str(key string) string { s, _ := l[key].(string); return s }

func (c *hupChild) lines() []logLine {
	var out []logLine
	sc := bufio.NewScanner(strings.NewReader(c.logs.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			out = append(out, l)
		}
	}
	return out
}

// isReloadResult reports the one line that ends each reload.
func isReloadResult(l logLine) bool {
	msg := l.str("msg")
	return msg == "config reloaded" || strings.HasPrefix(msg, "config reload failed") ||
		strings.HasPrefix(msg, "config reload: nothing to reload") || strings.HasPrefix(msg, "tls certificate reload")
}

// sighup sends the child SIGHUP and returns the reload's result line and
// the lines logged with it, waiting (10 s at most) for the result.
func (c *hupChild) sighup(t *testing.T) (logLine, []logLine) {
	t.Helper()
	before := len(c.lines())
	results := func(ls []logLine) int {
		n := 0
		for _, l := range ls {
			if isReloadResult(l) {
				n++
			}
		}
		return n
	}
	done := results(c.lines())
	if err := syscall.Kill(c.cmd.Process.Pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		ls := c.lines()
		if results(ls) > done {
			for _, l := range ls[before:] {
				if isReloadResult(l) {
					return l, ls[before:]
				}
			}
		}
	}
	t.Fatalf("no reload logged within 10 s of SIGHUP:\n%s", c.logs.String())
	return nil, nil
}

// status sends one request to the child, with Basic credentials when
// user is not "", and returns the status.
func (c *hupChild) status(t *testing.T, method, path, user, password string) int {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+c.addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// htpasswdOf writes users (name: password) to path, bcrypt at its
// cheapest.
func htpasswdOf(t *testing.T, path string, users map[string]string) {
	t.Helper()
	var b strings.Builder
	for u, pw := range users {
		hash, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%s\n", u, hash)
	}
	writeFile(t, path, b.String())
}

func wantReloaded(t *testing.T, l logLine, changed ...string) {
	t.Helper()
	if l.str("msg") != "config reloaded" {
		t.Fatalf("reload result %q (%s), want config reloaded", l.str("msg"), l.str("err"))
	}
	for _, c := range changed {
		if !strings.Contains(l.str("changed"), c) {
			t.Errorf("reload line changed=%q, want it to name %q", l.str("changed"), c)
		}
	}
}

// authBody is a hosted namespace behind the users of htpasswd; rule is
// the access rule's actions for alice and bob.
func authBody(htpasswd, actions string) string {
	return fmt.Sprintf(`auth:
  htpasswd_file: %q
  anonymous: []
  access:
    - {users: [alice, bob], repositories: ["registry.internal/**"], actions: [pull]}
    - {users: [alice], repositories: ["registry.internal/**"], actions: %s}
upstreams: [{name: registry.internal, default: true}]
`, htpasswd, actions)
}

const uploadPath = "/v2/registry.internal/app/blobs/uploads/"

// After SIGHUP a user added to the htpasswd file logs in, and a changed
// access rule lets a user push, then refuses them again.
func TestSIGHUPReloadsUsersAndAccessRules(t *testing.T) {
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	htpasswdOf(t, htpasswd, map[string]string{"alice": "alice-pw"})
	c := startHUPChild(t, authBody(htpasswd, "[pull]"))
	if got := c.status(t, "GET", "/v2/", "bob", "bob-pw"); got != 401 {
		t.Fatalf("bob before he is in the file: %d, want 401", got)
	}
	if got := c.status(t, "POST", uploadPath, "alice", "alice-pw"); got != 403 {
		t.Fatalf("alice's push before the rule grants it: %d, want 403", got)
	}

	htpasswdOf(t, htpasswd, map[string]string{"alice": "alice-pw", "bob": "bob-pw"})
	c.write(t, authBody(htpasswd, "[pull, push]"))
	l, _ := c.sighup(t)
	wantReloaded(t, l, "auth.access")
	if got := c.status(t, "GET", "/v2/", "bob", "bob-pw"); got != 200 {
		t.Errorf("bob after he was added and SIGHUP: %d, want 200", got)
	}
	if got := c.status(t, "POST", uploadPath, "alice", "alice-pw"); got != 202 {
		t.Errorf("alice's push after the rule granted it: %d, want 202", got)
	}
	if got := c.status(t, "POST", uploadPath, "bob", "bob-pw"); got != 403 {
		t.Errorf("bob's push, which no rule grants: %d, want 403", got)
	}

	c.write(t, authBody(htpasswd, "[pull]"))
	l, _ = c.sighup(t)
	wantReloaded(t, l, "auth.access")
	if got := c.status(t, "POST", uploadPath, "alice", "alice-pw"); got != 403 {
		t.Errorf("alice's push after the rule was taken back: %d, want 403", got)
	}
}

// basicUpstream is a real registry that serves only the Basic
// credentials puller:<password>, and records the passwords it was sent.
type basicUpstream struct {
	srv      *httptest.Server
	mu       sync.Mutex
	password string
	seen     map[string]int
}

func newBasicUpstream(t *testing.T, password string) *basicUpstream {
	t.Helper()
	u := &basicUpstream{password: password, seen: map[string]int{}}
	reg := registry.New(registry.Logger(nopLogger()))
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pw, ok := r.BasicAuth()
		u.mu.Lock()
		if ok {
			u.seen[pw]++
		}
		want := u.password
		u.mu.Unlock()
		if !ok || user != "puller" || pw != want {
			w.Header().Set("WWW-Authenticate", `Basic realm="upstream"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *basicUpstream) set(password string) { u.mu.Lock(); u.password = password; u.mu.Unlock() }
func (u *basicUpstream) sent(password string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.seen[password]
}

func (u *basicUpstream) push(t *testing.T, repo string) {
	t.Helper()
	ref, err := name.ParseReference(strings.TrimPrefix(u.srv.URL, "http://")+"/"+repo+":v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	u.mu.Lock()
	pw := u.password
	u.mu.Unlock()
	if err := remote.Write(ref, randomImage(t, 1024, 1), remote.WithAuth(&authn.Basic{Username: "puller", Password: pw})); err != nil {
		t.Fatalf("seed %s: %v", ref, err)
	}
}

// A changed password_file makes the upstream get the new password after
// SIGHUP: a new upstream client for that namespace.
func TestSIGHUPSendsNewUpstreamPassword(t *testing.T) {
	up := newBasicUpstream(t, "first")
	up.push(t, "library/a")
	up.push(t, "library/b")
	pwFile := filepath.Join(t.TempDir(), "password")
	writeFile(t, pwFile, "first\n")
	body := fmt.Sprintf(`upstreams:
  - {name: docker.io, url: "%s", default: true, username: puller, password_file: %q, anonymous_pulls_use_credentials: true}
`, up.srv.URL, pwFile)
	c := startHUPChild(t, body)
	if got := c.status(t, "GET", "/v2/library/a/manifests/v1", "", ""); got != 200 {
		t.Fatalf("pull with the first password: %d, want 200", got)
	}

	up.set("second") // the account's password changes upstream
	if got := c.status(t, "GET", "/v2/library/b/manifests/v1", "", ""); got == 200 {
		t.Fatalf("pull with the old password after it changed upstream: 200, want a failure (the test would prove nothing)")
	}
	writeFile(t, pwFile, "second\n")
	l, _ := c.sighup(t)
	wantReloaded(t, l, "upstreams[docker.io] credentials")
	if got := c.status(t, "GET", "/v2/library/b/manifests/v1", "", ""); got != 200 {
		t.Errorf("pull after the password file changed and SIGHUP: %d, want 200", got)
	}
	if up.sent("second") == 0 {
		t.Error("the upstream never got the new password")
	}

	l, _ = c.sighup(t) // the same file again: the client stays
	wantReloaded(t, l)
	if strings.Contains(l.str("changed"), "credentials") {
		t.Errorf("a reload of unchanged credentials made a new client: changed=%q", l.str("changed"))
	}
}

// A changed tag_ttl changes when a tag is revalidated: cut to a
// millisecond every pull HEADs the upstream, set back to an hour none do.
func TestSIGHUPChangesTagTTL(t *testing.T) {
	up := newUpstream(t)
	up.push(t, "library/a", "v1", randomImage(t, 1024, 1))
	body := func(ttl string) string {
		return fmt.Sprintf("upstreams: [{name: docker.io, url: \"http://%s\", default: true, tag_ttl: %s}]\n", up.host(), ttl)
	}
	c := startHUPChild(t, body("1h"))
	pull := func() {
		t.Helper()
		if got := c.status(t, "GET", "/v2/library/a/manifests/v1", "", ""); got != 200 {
			t.Fatalf("pull: %d, want 200", got)
		}
	}
	heads := func() int { return up.count("HEAD", "/manifests/v1") }
	pull() // the cold pull may HEAD first
	cold := heads()
	pull()
	if h := heads(); h != cold {
		t.Fatalf("a pull inside a 1h TTL: %d HEADs, want none", h-cold)
	}

	c.write(t, body("1ms"))
	l, _ := c.sighup(t)
	wantReloaded(t, l, "upstreams[docker.io].tag_ttl")
	pull() // the reload alone took longer than a millisecond
	pull()
	if h := heads() - cold; h != 2 {
		t.Errorf("two pulls with a 1ms TTL: %d HEADs, want 2", h)
	}

	c.write(t, body("1h"))
	l, _ = c.sighup(t)
	wantReloaded(t, l, "upstreams[docker.io].tag_ttl")
	pull()
	if h := heads() - cold; h != 2 {
		t.Errorf("a pull after the TTL went back to 1h: %d HEADs in all, want still 2", h)
	}
}

// With TLS, SIGHUP makes new connections get the new certificate.
func TestSIGHUPServesNewCertificate(t *testing.T) {
	dir, pool := devPKI(t)
	next, _ := devPKI(t)
	pool.AppendCertsFromPEM(mustRead(t, filepath.Join(next, devca.CACert)))
	c := startHUPChild(t, tlsSection(dir, "")+"\nupstreams: [{name: registry.internal, default: true}]\n")
	leaf := func() *x509.Certificate {
		t.Helper()
		resp, err := httpsClient(&tls.Config{RootCAs: pool}).Get("https://" + c.addr + "/v2/")
		if err != nil {
			t.Fatalf("GET /v2/ over TLS: %v", err)
		}
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0]
	}
	if !leaf().Equal(parseLeaf(t, filepath.Join(dir, devca.ServerCert))) {
		t.Fatal("before the reload: not the first certificate")
	}
	swapCert(t, dir, next)
	l, _ := c.sighup(t)
	wantReloaded(t, l, "tls certificate")
	if !leaf().Equal(parseLeaf(t, filepath.Join(next, devca.ServerCert))) {
		t.Error("a new connection after SIGHUP does not get the new certificate")
	}
}

// A broken file changes nothing: invalid YAML, a config with validation
// errors, a config whose htpasswd file cannot be read. Each reload fails,
// its log line names every problem, and the old users and rules go on;
// then a good file applies.
func TestSIGHUPBrokenConfigChangesNothing(t *testing.T) {
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	htpasswdOf(t, htpasswd, map[string]string{"alice": "alice-pw"})
	withBob := filepath.Join(t.TempDir(), "htpasswd")
	htpasswdOf(t, withBob, map[string]string{"alice": "alice-pw", "bob": "bob-pw"})
	garbage := filepath.Join(t.TempDir(), "htpasswd")
	writeFile(t, garbage, "this is not an htpasswd line\n")
	c := startHUPChild(t, authBody(htpasswd, "[pull]"))

	tests := []struct {
		name string
		body string
		want []string // in the failure's err
	}{
		{"invalid YAML", "auth: [\n", []string{"yaml"}},
		{"two validation errors", strings.Replace(authBody(withBob, "[pull, push, fly]"), "upstreams: [{name: registry.internal, default: true}]",
			"cache: {tag_ttl: -1s}\nupstreams: [{name: registry.internal, default: true}]", 1), []string{"cache.tag_ttl", "fly"}},
		{"an htpasswd file that does not parse", authBody(garbage, "[pull, push]"), []string{garbage}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.write(t, tt.body)
			l, _ := c.sighup(t)
			if !strings.HasPrefix(l.str("msg"), "config reload failed") {
				t.Fatalf("reload of a broken file: %q, want config reload failed", l.str("msg"))
			}
			for _, w := range tt.want {
				if !strings.Contains(strings.ToLower(l.str("err")), strings.ToLower(w)) {
					t.Errorf("failure err=%q does not name %q", l.str("err"), w)
				}
			}
			if got := c.status(t, "GET", "/v2/", "alice", "alice-pw"); got != 200 {
				t.Errorf("alice after a failed reload: %d, want 200", got)
			}
			if got := c.status(t, "GET", "/v2/", "bob", "bob-pw"); got != 401 {
				t.Errorf("bob after a failed reload: %d, want 401 (the users stay)", got)
			}
			if got := c.status(t, "POST", uploadPath, "alice", "alice-pw"); got != 403 {
				t.Errorf("alice's push after a failed reload: %d, want 403 (the rules stay)", got)
			}
		})
	}

	c.write(t, authBody(withBob, "[pull]"))
	l, _ := c.sighup(t)
	wantReloaded(t, l, "auth.htpasswd_file")
	if got := c.status(t, "GET", "/v2/", "bob", "bob-pw"); got != 200 {
		t.Errorf("bob after a good reload: %d, want 200", got)
	}
}

// A change to listen or data_dir needs a restart: logged field by field,
// not applied, while the rest of the file applies.
func TestSIGHUPListenNeedsRestart(t *testing.T) {
	up := newUpstream(t)
	body := func(ttl string) string {
		return fmt.Sprintf("upstreams: [{name: docker.io, url: \"http://%s\", default: true, tag_ttl: %s}]\n", up.host(), ttl)
	}
	c := startHUPChild(t, body("1h"))
	other := freeAddr(t)
	writeFile(t, c.cfg, c.header(other, t.TempDir())+body("2h"))
	l, with := c.sighup(t)
	wantReloaded(t, l, "upstreams[docker.io].tag_ttl")
	if got := l.str("needs_restart"); got != "listen, data_dir" {
		t.Errorf("needs_restart=%q, want \"listen, data_dir\"", got)
	}
	var warned []string
	for _, w := range with {
		if strings.Contains(w.str("msg"), "needs a restart") {
			warned = append(warned, w.str("field"))
		}
	}
	if strings.Join(warned, " ") != "listen data_dir" {
		t.Errorf("needs-a-restart warnings for %q, want listen then data_dir", warned)
	}
	if got := c.status(t, "GET", "/v2/", "", ""); got != 200 {
		t.Errorf("the running address after the reload: %d, want 200", got)
	}
	if conn, err := net.DialTimeout("tcp", other, time.Second); err == nil {
		conn.Close()
		t.Errorf("the new listen address %s answers: applied without a restart", other)
	}
}

// A node started without a config file survives SIGHUP, and says that it
// reloads nothing but its certificate: none without TLS, the new one with
// --tls-self-signed.
func TestSIGHUPWithoutConfigFile(t *testing.T) {
	for _, withTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", withTLS), func(t *testing.T) {
			addr := freeAddr(t)
			t.Setenv("CAIRN_LISTEN", addr)
			t.Setenv("CAIRN_ADMIN_LISTEN", "")
			t.Setenv("CAIRN_DATA_DIR", t.TempDir())
			t.Setenv("CAIRN_LOG_FORMAT", "json")
			dir, pool := devPKI(t)
			next, _ := devPKI(t)
			pool.AppendCertsFromPEM(mustRead(t, filepath.Join(next, devca.CACert)))
			if withTLS {
				t.Setenv("CAIRN_TLS_SELF_SIGNED", dir) // reuses the certificate there
			}
			c := &hupChild{addr: addr}
			c.cmd = startChild(t, "", addr) // -c "": the embedded default
			c.logs = c.cmd.Stderr.(*syncBuffer)
			swapCert(t, dir, next)
			l, _ := c.sighup(t)
			client, scheme := http.DefaultClient, "http"
			if withTLS {
				client, scheme = httpsClient(&tls.Config{RootCAs: pool}), "https"
				if l.str("msg") != "tls certificate reloaded" || !strings.Contains(l.str("config_file"), "without -c") {
					t.Errorf("reload without a file, with TLS: %q config_file=%q, want the certificate reloaded, saying why only it", l.str("msg"), l.str("config_file"))
				}
			} else if !strings.Contains(l.str("msg"), "nothing to reload") {
				t.Errorf("reload without a file or TLS: %q, want nothing to reload", l.str("msg"))
			}
			resp, err := client.Get(scheme + "://" + addr + "/v2/")
			if err != nil {
				t.Fatalf("after SIGHUP: %v", err)
			}
			resp.Body.Close()
			if withTLS && !resp.TLS.PeerCertificates[0].Equal(parseLeaf(t, filepath.Join(next, devca.ServerCert))) {
				t.Error("after SIGHUP without a file: not the new certificate")
			}
		})
	}
}
