package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-mirror/cairn/internal/config"
)

// certReloader holds the serving certificate. GetCertificate reads it on
// every handshake, so a reload swaps it for new connections while open
// ones keep the one they were made with.
type certReloader struct {
	mu                sync.Mutex // certFile, keyFile
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
	log               *slog.Logger
}

func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	c, err := loadCert(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	r.cert.Store(c)
	return r, nil
}

func loadCert(certFile, keyFile string) (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return &c, nil
}

// use serves c, read from certFile and keyFile, from now on: a config
// reload may name other files.
func (r *certReloader) use(certFile, keyFile string, c *tls.Certificate) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.certFile, r.keyFile = certFile, keyFile
	r.cert.Store(c)
}

// reloadAndLog reads the same files again and logs the outcome, with
// attrs (what SIGHUP does on a node started without a config file); on
// error the current certificate stays.
func (r *certReloader) reloadAndLog(attrs ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := loadCert(r.certFile, r.keyFile)
	if err != nil {
		r.log.Warn("tls certificate reload failed: keeping the current certificate", append([]any{"err", err}, attrs...)...)
		return
	}
	r.cert.Store(c)
	r.log.Info("tls certificate reloaded", append([]any{"cert_file", r.certFile, "not_after", c.Leaf.NotAfter}, attrs...)...)
}

func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

// newTLSConfig is the listeners' TLS configuration: the reloaded
// certificate, the minimum version and, with client_ca_file, verified
// client certificates (mutual TLS). The verified chain reaches handlers
// as http.Request.TLS.VerifiedChains.
func newTLSConfig(t config.TLS, certs *certReloader) (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:     t.Version(),
		GetCertificate: certs.getCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
	}
	if t.ClientCAFile == "" {
		return cfg, nil
	}
	pemBytes, err := os.ReadFile(t.ClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("tls.client_ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("tls.client_ca_file: %s holds no PEM certificate", t.ClientCAFile)
	}
	cfg.ClientCAs = pool
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	return cfg, nil
}

// The files --tls-self-signed keeps in its directory.
const (
	caCertName     = "ca.pem"
	caKeyName      = "ca-key.pem"
	serverCertName = "server.pem"
	serverKeyName  = "server-key.pem"
)

// selfSignedNames are the names a development certificate covers: the
// loopback names and the listen host when it is a specific one.
func selfSignedNames(listen string) []string {
	names := []string{"localhost", "127.0.0.1", "::1"}
	if host, _, err := net.SplitHostPort(listen); err == nil && host != "" {
		if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
			names = append(names, host)
		}
	}
	return names
}

// ensureSelfSigned makes dir hold a development CA and a server
// certificate it signed for names. Files already there are reused: the
// server certificate if it is still valid for every name, else the CA to
// sign a new one.
func ensureSelfSigned(dir string, names []string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("--tls-self-signed: %w", err)
	}
	ca, caKey, err := loadCA(dir)
	if err != nil {
		if ca, caKey, err = newCA(dir); err != nil {
			return fmt.Errorf("--tls-self-signed: %w", err)
		}
	} else if serverCertValid(dir, ca, names) {
		return nil
	}
	certPEM, keyPEM, err := issueCert(ca, caKey, names, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return fmt.Errorf("--tls-self-signed: %w", err)
	}
	return errors.Join(writePEM(dir, serverKeyName, keyPEM), writePEM(dir, serverCertName, certPEM))
}

func serverCertValid(dir string, ca *x509.Certificate, names []string) bool {
	c, err := tls.LoadX509KeyPair(filepath.Join(dir, serverCertName), filepath.Join(dir, serverKeyName))
	if err != nil {
		return false
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	for _, n := range names {
		if _, err := c.Leaf.Verify(x509.VerifyOptions{DNSName: n, Roots: pool, CurrentTime: time.Now().Add(24 * time.Hour)}); err != nil {
			return false
		}
	}
	return true
}

func loadCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	c, err := tls.LoadX509KeyPair(filepath.Join(dir, caCertName), filepath.Join(dir, caKeyName))
	if err != nil {
		return nil, nil, err
	}
	key, ok := c.PrivateKey.(*ecdsa.PrivateKey)
	if !ok || !c.Leaf.IsCA {
		return nil, nil, errors.New("not a cairn development CA")
	}
	return c.Leaf, key, nil
}

func newCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "cairn development CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	err = errors.Join(
		writePEM(dir, caKeyName, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})),
		writePEM(dir, caCertName, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	return ca, key, err
}

// issueCert signs a one-year leaf certificate for names (DNS names or IP
// addresses) with the given usage; the first name is its common name.
func issueCert(ca *x509.Certificate, caKey *ecdsa.PrivateKey, names []string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

func randomSerial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127)) // never fails: crypto/rand does not
	return n
}

// writePEM writes a file readable by its owner only (keys are secrets;
// certificates do not mind).
func writePEM(dir, name string, data []byte) error {
	return os.WriteFile(filepath.Join(dir, name), data, 0o600)
}

// hostsTOML is what --tls-self-signed prints: containerd's hosts.toml
// for a registry mirrored through cairn at addr, trusting the development
// CA in dir.
func hostsTOML(dir, addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return fmt.Sprintf(`# containerd: /etc/containerd/certs.d/docker.io/hosts.toml (one directory per mirrored registry)
server = "https://registry-1.docker.io"

[host."https://%s"]
  capabilities = ["pull", "resolve"]
  ca = %q
`, net.JoinHostPort(host, port), filepath.Join(dir, caCertName))
}
