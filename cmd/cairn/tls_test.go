package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-mirror/cairn/internal/devca"
)

var loopbackNames = []string{"localhost", "127.0.0.1", "::1"}

// devPKI makes a development CA and server certificate in a new directory
// and returns the directory and a pool trusting the CA.
func devPKI(t *testing.T) (string, *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	if err := devca.Ensure(dir, loopbackNames); err != nil {
		t.Fatal(err)
	}
	return dir, caPool(t, filepath.Join(dir, devca.CACert))
}

func caPool(t *testing.T, files ...string) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !pool.AppendCertsFromPEM(b) {
			t.Fatalf("%s: no certificate", f)
		}
	}
	return pool
}

// tlsSection is the config's tls: section for the certificate in dir.
func tlsSection(dir, more string) string {
	return fmt.Sprintf("tls: {cert_file: %q, key_file: %q%s}", filepath.Join(dir, devca.ServerCert), filepath.Join(dir, devca.ServerKey), more)
}

// httpsClient makes a new connection per request.
func httpsClient(cfg *tls.Config) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
}

func serverCertPEM(t *testing.T, dir string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, devca.ServerCert))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// peerCert returns the leaf certificate a new connection to the node sees.
func peerCert(t *testing.T, n *node, pool *x509.CertPool) *x509.Certificate {
	t.Helper()
	resp, err := httpsClient(&tls.Config{RootCAs: pool}).Get("https://" + n.addr() + "/v2/")
	if err != nil {
		t.Fatalf("GET /v2/ over TLS: %v", err)
	}
	resp.Body.Close()
	return resp.TLS.PeerCertificates[0]
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTLSServesV2(t *testing.T) {
	up := newUpstream(t)
	dir, pool := devPKI(t)
	n := startNode(t, testConfig(t, t.TempDir(), up.host(), up.host(), tlsSection(dir, "")))

	resp, err := httpsClient(&tls.Config{RootCAs: pool}).Get("https://" + n.addr() + "/v2/")
	if err != nil {
		t.Fatalf("GET /v2/ with the CA trusted: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Errorf("GET /v2/: got %d over %+v, want 200 over TLS 1.2+", resp.StatusCode, resp.TLS)
	}

	// Go's server answers a plain request on a TLS port with a 400 that
	// says so; never with the API.
	if resp, err := http.Get("http://" + n.addr() + "/v2/"); err == nil {
		body, _ := readAll(resp)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "HTTPS") {
			t.Errorf("plain HTTP on the TLS port: got %d %q, want 400 or no answer", resp.StatusCode, body)
		}
	}
	if _, err := httpsClient(&tls.Config{}).Get("https://" + n.addr() + "/v2/"); err == nil {
		t.Error("a client not trusting the CA connected")
	}
	old := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
	if _, err := httpsClient(old).Get("https://" + n.addr() + "/v2/"); err == nil {
		t.Error("a TLS 1.1 client connected, want the handshake refused")
	}
	if n.s.adminLn != nil {
		if resp, err := http.Get("http://" + n.s.adminAddr() + "/healthz"); err != nil || resp.StatusCode != 200 {
			t.Errorf("admin listener without tls.admin: got %v %v, want plain HTTP 200", resp, err)
		}
	}
}

func TestTLSMinVersion13AndAdmin(t *testing.T) {
	up := newUpstream(t)
	dir, pool := devPKI(t)
	n := startNode(t, testConfig(t, t.TempDir(), up.host(), up.host(), tlsSection(dir, `, min_version: "1.3", admin: true`)))
	tls12 := &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12}
	if _, err := httpsClient(tls12).Get("https://" + n.addr() + "/v2/"); err == nil {
		t.Error("a TLS 1.2 client connected with min_version 1.3")
	}
	resp, err := httpsClient(&tls.Config{RootCAs: pool}).Get("https://" + n.s.adminAddr() + "/healthz")
	if err != nil {
		t.Fatalf("admin over TLS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS.Version != tls.VersionTLS13 {
		t.Errorf("admin /healthz: got %d over %x, want 200 over TLS 1.3", resp.StatusCode, resp.TLS.Version)
	}
}

// swapCert replaces the node's certificate files with the ones in from.
func swapCert(t *testing.T, to, from string) {
	t.Helper()
	for _, name := range []string{devca.ServerKey, devca.ServerCert} {
		if err := os.WriteFile(filepath.Join(to, name), mustRead(t, filepath.Join(from, name)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// A certificate rotated while a long blob download is in flight: the
// download completes whole on the old certificate, new connections see the
// new one, and a broken file on the next reload keeps the current one.
func TestTLSReloadDuringDownload(t *testing.T) {
	up := newUpstream(t)
	img := randomImage(t, 16<<20, 1)
	up.push(t, "library/big", "v1", img)
	layers, _ := img.Layers()
	want := layerBytes(t, layers[0])
	dir, pool := devPKI(t) // trusts both CAs
	next, _ := devPKI(t)
	pool.AppendCertsFromPEM(mustRead(t, filepath.Join(next, devca.CACert)))
	n := startNode(t, testConfig(t, t.TempDir(), up.host(), up.host(), tlsSection(dir, "")))
	oldLeaf := peerCert(t, n, pool)

	resp, err := httpsClient(&tls.Config{RootCAs: pool}).Get("https://" + n.addr() + "/v2/library/big/blobs/" + mustDigest(t, layers[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	head := make([]byte, 4096)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatalf("first bytes of the blob: %v", err)
	}

	swapCert(t, dir, next)
	n.s.certs.reloadAndLog() // what the SIGHUP handler calls
	newLeaf := peerCert(t, n, pool)
	if newLeaf.Equal(oldLeaf) {
		t.Fatal("a new connection after the reload still sees the old certificate")
	}
	if !newLeaf.Equal(parseLeaf(t, filepath.Join(next, devca.ServerCert))) {
		t.Error("a new connection after the reload sees neither certificate")
	}

	rest, err := io.ReadAll(resp.Body)
	if got := append(head, rest...); err != nil || !bytes.Equal(got, want) {
		t.Errorf("download across the reload: %d bytes (sha256 %x), %v; want %d bytes", len(got), sha256.Sum256(got), err, len(want))
	}
	if !resp.TLS.PeerCertificates[0].Equal(oldLeaf) {
		t.Error("the in-flight download was not on the old certificate")
	}

	if err := os.WriteFile(filepath.Join(dir, devca.ServerCert), []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	n.s.certs.reloadAndLog()
	if got := peerCert(t, n, pool); !got.Equal(newLeaf) {
		t.Error("a failed reload changed the certificate")
	}
	if !strings.Contains(n.logs.String(), "tls certificate reload failed") {
		t.Errorf("a failed reload was not logged:\n%s", n.logs.String())
	}
}

func parseLeaf(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	c, err := tls.LoadX509KeyPair(path, filepath.Join(filepath.Dir(path), devca.ServerKey))
	if err != nil {
		t.Fatal(err)
	}
	return c.Leaf
}

// SIGHUP to the process reloads the certificate: the handler is wired.
func TestTLSSIGHUPReloads(t *testing.T) {
	// Our own registration keeps the test binary alive whatever the node
	// has registered when the signal arrives.
	guard := make(chan os.Signal, 8)
	signal.Notify(guard, syscall.SIGHUP)
	defer signal.Stop(guard)

	up := newUpstream(t)
	dir, pool := devPKI(t)
	next, _ := devPKI(t)
	pool.AppendCertsFromPEM(mustRead(t, filepath.Join(next, devca.CACert)))
	n := startNode(t, testConfig(t, t.TempDir(), up.host(), up.host(), tlsSection(dir, "")))
	waitUntil(t, 10*time.Second, "the node to be ready", n.s.ready.Load)
	oldLeaf := peerCert(t, n, pool)
	swapCert(t, dir, next)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "the new certificate after SIGHUP", func() bool { return !peerCert(t, n, pool).Equal(oldLeaf) })
	if !strings.Contains(n.logs.String(), "tls certificate reloaded") {
		t.Error("the reload was not logged")
	}
}

// With client_ca_file a client without a certificate signed by that CA
// does not get through the handshake.
func TestMutualTLS(t *testing.T) {
	up := newUpstream(t)
	dir, pool := devPKI(t)
	n := startNode(t, testConfig(t, t.TempDir(), up.host(), up.host(),
		tlsSection(dir, fmt.Sprintf(", client_ca_file: %q", filepath.Join(dir, devca.CACert)))))
	url := "https://" + n.addr() + "/v2/"

	if resp, err := httpsClient(&tls.Config{RootCAs: pool}).Get(url); err == nil {
		resp.Body.Close()
		t.Errorf("no client certificate: got %d, want no handshake", resp.StatusCode)
	}
	ca, caKey, err := devca.LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	good := clientCert(t, ca, caKey)
	resp, err := httpsClient(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{good}}).Get(url)
	if err != nil {
		t.Fatalf("a client certificate from the CA: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("with a client certificate: got %d, want 200", resp.StatusCode)
	}

	otherDir, _ := devPKI(t)
	otherCA, otherKey, err := devca.LoadCA(otherDir)
	if err != nil {
		t.Fatal(err)
	}
	bad := clientCert(t, otherCA, otherKey)
	if resp, err := httpsClient(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{bad}}).Get(url); err == nil {
		resp.Body.Close()
		t.Errorf("a client certificate from another CA: got %d, want no handshake", resp.StatusCode)
	}
}

func clientCert(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey) tls.Certificate {
	t.Helper()
	certPEM, keyPEM, err := devca.IssueCert(ca, caKey, []string{"ci-runner"}, x509.ExtKeyUsageClientAuth)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var hostRE = regexp.MustCompile(`\[host\."(https://[^"]+)"\]`)
var caRE = regexp.MustCompile(`ca = "([^"]+)"`)

// serve --tls-self-signed writes a CA and certificate, serves with them,
// prints a hosts.toml whose ca alone lets a client in, and reuses the
// files on the next start.
func TestTLSSelfSignedFlag(t *testing.T) {
	up := newUpstream(t)
	cfg := filepath.Join(t.TempDir(), "cairn.yaml")
	addr := freeAddr(t)
	yaml := fmt.Sprintf("version: 1\nlisten: %q\nadmin_listen: \"\"\ndata_dir: %q\nupstreams: [{name: docker.io, url: \"http://%s\", default: true}]\n", addr, t.TempDir(), up.host())
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "pki")

	serveSelfSigned(t, cfg, dir, func(out string) {
		host, ca := hostRE.FindStringSubmatch(out), caRE.FindStringSubmatch(out)
		if host == nil || ca == nil {
			t.Fatalf("no hosts.toml host and ca lines in:\n%s", out)
		}
		if ca[1] != filepath.Join(dir, devca.CACert) {
			t.Errorf("hosts.toml ca = %q, want %q", ca[1], filepath.Join(dir, devca.CACert))
		}
		resp, err := httpsClient(&tls.Config{RootCAs: caPool(t, ca[1])}).Get(host[1] + "/v2/")
		if err != nil {
			t.Fatalf("a client trusting only the printed ca: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET /v2/: got %d, want 200", resp.StatusCode)
		}
	})
	ca, server := mustRead(t, filepath.Join(dir, devca.CACert)), serverCertPEM(t, dir)
	for _, name := range []string{devca.CAKey, devca.ServerKey} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", name, fi, err)
		}
	}
	serveSelfSigned(t, cfg, dir, func(string) {})
	if !bytes.Equal(ca, mustRead(t, filepath.Join(dir, devca.CACert))) || !bytes.Equal(server, serverCertPEM(t, dir)) {
		t.Error("a second start did not reuse the certificate files")
	}
}

// serveSelfSigned runs `cairn serve -c cfg --tls-self-signed dir` in
// process until check has looked at what it printed.
func serveSelfSigned(t *testing.T, cfg, dir string, check func(out string)) {
	t.Helper()
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- newApp(&stdout, &stderr).RunContext(ctx, []string{"cairn", "serve", "-c", cfg, "--tls-self-signed", dir})
	}()
	defer cancel()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("cairn serve stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
		}
	})
	waitUntil(t, 10*time.Second, "cairn serve to print its CA and start serving", func() bool {
		return strings.Contains(stdout.String(), "ca = ") && strings.Contains(stderr.String(), "cairn serving")
	})
	check(stdout.String())
	cancel()
	if err := <-done; err != nil {
		t.Errorf("cairn serve: %v\n%s", err, stderr.String())
	}
}
