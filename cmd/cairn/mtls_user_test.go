package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/cairn-mirror/cairn/internal/devca"
)

// With client_ca_file, a client certificate names the user when the
// request has no Authorization header: CN alice may push where alice may,
// a CN the rules do not name may not, and Basic credentials still win
// over the certificate.
func TestMutualTLSCertificateUser(t *testing.T) {
	up := newUpstream(t)
	dir, pool := devPKI(t)
	authSection := fmt.Sprintf(`auth:
  htpasswd_file: %q
  access:
    - users: [alice]
      repositories: ["registry.internal/**"]
      actions: [pull, push]`, writeHtpasswd(t))
	n := startNode(t, testConfig(t, t.TempDir(), up.host(), up.host(), authSection,
		tlsSection(dir, fmt.Sprintf(", client_ca_file: %q", filepath.Join(dir, devca.CACert)))))
	ca, caKey, err := devca.LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	as := func(cn string) *http.Client {
		certPEM, keyPEM, err := devca.IssueCert(ca, caKey, []string{cn}, x509.ExtKeyUsageClientAuth)
		if err != nil {
			t.Fatal(err)
		}
		c, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return httpsClient(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{c}})
	}
	post := func(c *http.Client, repo, user string) int {
		req, err := http.NewRequest("POST", "https://"+n.addr()+"/v2/"+repo+"/blobs/uploads/", nil)
		if err != nil {
			t.Fatal(err)
		}
		if user != "" {
			req.SetBasicAuth(user, pushUsers[user])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	alice, mallory := as("alice"), as("mallory")
	tests := []struct {
		what   string
		client *http.Client
		repo   string
		user   string
		want   int
	}{
		{"CN alice, where alice may push", alice, "registry.internal/team/app", "", http.StatusAccepted},
		{"CN alice, in the mirror", alice, "library/alpine", "", http.StatusForbidden},
		{"CN mallory, without rules", mallory, "registry.internal/team/app", "", http.StatusForbidden},
		{"CN mallory with alice's password", mallory, "registry.internal/team/app", "alice", http.StatusAccepted},
		{"CN alice with bob's password", alice, "registry.internal/team/app", "bob", http.StatusForbidden},
	}
	for _, tt := range tests {
		if got := post(tt.client, tt.repo, tt.user); got != tt.want {
			t.Errorf("%s: POST uploads got %d, want %d", tt.what, got, tt.want)
		}
	}
}
