package devca

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestNames(t *testing.T) {
	loopback := []string{"localhost", "127.0.0.1", "::1"}
	for _, tt := range []struct {
		listen string
		want   []string
	}{
		{":5000", loopback},
		{"0.0.0.0:5000", loopback},
		{"[::]:5000", loopback},
		{"127.0.0.1:5000", append(slices.Clone(loopback), "127.0.0.1")},
		{"mirror.lan:5000", append(slices.Clone(loopback), "mirror.lan")},
		{"no port", loopback},
	} {
		if got := Names(tt.listen); !slices.Equal(got, tt.want) {
			t.Errorf("Names(%q): got %v, want %v", tt.listen, got, tt.want)
		}
	}
}

func read(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// verifyServer checks that the server certificate in dir is signed by the
// CA in dir and valid for every name.
func verifyServer(t *testing.T, dir string, names ...string) {
	t.Helper()
	ca, _, err := LoadCA(dir)
	if err != nil {
		t.Fatalf("LoadCA: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	c, err := tls.LoadX509KeyPair(filepath.Join(dir, ServerCert), filepath.Join(dir, ServerKey))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if _, err := c.Leaf.Verify(x509.VerifyOptions{DNSName: n, Roots: pool}); err != nil {
			t.Errorf("server certificate for %q: %v", n, err)
		}
	}
}

// Ensure makes a CA and a server certificate, keys readable by their
// owner only; a second call reuses both; a new name gets a new server
// certificate from the same CA.
func TestEnsureMakesThenReuses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	if err := Ensure(dir, []string{"localhost", "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	verifyServer(t, dir, "localhost", "127.0.0.1")
	for _, name := range []string{CAKey, ServerKey} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", name, fi, err)
		}
	}
	ca, server := read(t, dir, CACert), read(t, dir, ServerCert)

	if err := Ensure(dir, []string{"localhost", "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ca, read(t, dir, CACert)) || !bytes.Equal(server, read(t, dir, ServerCert)) {
		t.Error("a second Ensure for the same names did not reuse the files")
	}

	if err := Ensure(dir, []string{"localhost", "mirror.lan"}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ca, read(t, dir, CACert)) {
		t.Error("a new name replaced the CA, want it reused")
	}
	if bytes.Equal(server, read(t, dir, ServerCert)) {
		t.Error("a new name kept the old server certificate")
	}
	verifyServer(t, dir, "localhost", "mirror.lan")
}

// A CA file that is not a CA is replaced by a new one.
func TestEnsureReplacesUnreadableCA(t *testing.T) {
	dir := t.TempDir()
	if err := Ensure(dir, []string{"localhost"}); err != nil {
		t.Fatal(err)
	}
	// The server pair is no CA: LoadCA refuses it, Ensure makes a new CA.
	for from, to := range map[string]string{ServerCert: CACert, ServerKey: CAKey} {
		if err := os.WriteFile(filepath.Join(dir, to), read(t, dir, from), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := LoadCA(dir); err == nil {
		t.Fatal("LoadCA accepted a leaf certificate as the CA")
	}
	if err := Ensure(dir, []string{"localhost"}); err != nil {
		t.Fatal(err)
	}
	verifyServer(t, dir, "localhost")
}

func TestIssueClientCert(t *testing.T) {
	dir := t.TempDir()
	if err := Ensure(dir, []string{"localhost"}); err != nil {
		t.Fatal(err)
	}
	ca, key, err := LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := IssueCert(ca, key, []string{"alice"}, x509.ExtKeyUsageClientAuth)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate: %v", err)
	}
	if c.Leaf.Subject.CommonName != "alice" {
		t.Errorf("common name: got %q, want alice", c.Leaf.Subject.CommonName)
	}
	if _, _, err := IssueCert(ca, key, nil, x509.ExtKeyUsageClientAuth); err == nil {
		t.Error("IssueCert without a name: got no error")
	}
}
