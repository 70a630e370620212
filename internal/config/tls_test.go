package config

import (
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const tlsBase = "version: 1\nupstreams: [{name: docker.io, url: \"https://registry-1.docker.io\"}]\n"

func TestTLSAbsentIsPlainHTTP(t *testing.T) {
	c := mustLoad(t, tlsBase)
	if c.TLS.Enabled() {
		t.Errorf("TLS enabled without a tls section: %+v", c.TLS)
	}
	out, err := c.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "tls") {
		t.Errorf("effective config mentions tls without a tls section:\n%s", out)
	}
}

func TestTLSValid(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"cert.pem", "key.pem", "ca.pem"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		yaml string
		want uint16
	}{
		{"tls: {cert_file: %[1]s/cert.pem, key_file: %[1]s/key.pem}", tls.VersionTLS12},
		{"tls: {cert_file: %[1]s/cert.pem, key_file: %[1]s/key.pem, min_version: \"1.2\"}", tls.VersionTLS12},
		{"tls: {cert_file: %[1]s/cert.pem, key_file: %[1]s/key.pem, min_version: \"1.3\", client_ca_file: %[1]s/ca.pem, admin: true}", tls.VersionTLS13},
	} {
		c := mustLoad(t, tlsBase+strings.ReplaceAll(tc.yaml, "%[1]s", dir))
		if !c.TLS.Enabled() {
			t.Errorf("%s: TLS not enabled", tc.yaml)
		}
		if got := c.TLS.Version(); got != tc.want {
			t.Errorf("%s: got version %x, want %x", tc.yaml, got, tc.want)
		}
	}
}

// Every TLS problem is reported at once, each with its field path.
func TestTLSProblems(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(cert, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		yaml string
		want []string // path prefixes of the problems
	}{
		{"tls: {cert_file: CERT}", []string{"tls.cert_file: needs key_file"}},
		{"tls: {key_file: CERT}", []string{"tls.key_file: needs cert_file"}},
		{"tls: {cert_file: CERT, key_file: DIR/missing.pem, min_version: \"1.1\", client_ca_file: DIR/noca.pem}",
			[]string{"tls.key_file: ", "tls.min_version: got \"1.1\"", "tls.client_ca_file: "}},
		{"tls: {client_ca_file: CERT}", []string{"tls.client_ca_file: needs cert_file"}},
		{"tls: {min_version: \"1.3\"}", []string{"tls.min_version: set without cert_file"}},
		{"tls: {admin: true}", []string{"tls.admin: needs cert_file"}},
		{"admin_listen: \"\"\ntls: {cert_file: CERT, key_file: CERT, admin: true}", []string{"tls.admin: admin_listen is empty"}},
		{"tls: {cert_file: DIR, key_file: CERT}", []string{"tls.cert_file: " + dir + " is a directory"}},
	} {
		yml := strings.NewReplacer("CERT", cert, "DIR", dir).Replace(tc.yaml)
		_, err := load(t, tlsBase+yml)
		var ve *ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("%s: got %v, want a *ValidationError", yml, err)
			continue
		}
		if len(ve.Problems) != len(tc.want) {
			t.Errorf("%s: got %d problems %q, want %d", yml, len(ve.Problems), ve.Problems, len(tc.want))
		}
		for _, w := range tc.want {
			if !slices.ContainsFunc(ve.Problems, func(p string) bool { return strings.HasPrefix(p, w) }) {
				t.Errorf("%s: got %q, want a problem starting %q", yml, ve.Problems, w)
			}
		}
	}
}

func TestTLSUnknownKey(t *testing.T) {
	_, err := load(t, tlsBase+"tls: {certfile: x}\n")
	if err == nil || !strings.Contains(err.Error(), "tls.certfile") {
		t.Errorf("got %v, want a problem naming tls.certfile", err)
	}
}
