package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/cairn-mirror/cairn/internal/config"
	"github.com/cairn-mirror/cairn/internal/devca"
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
`, net.JoinHostPort(host, port), filepath.Join(dir, devca.CACert))
}
