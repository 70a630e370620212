package config

import "crypto/tls"

// TLS serves the OCI Distribution API over HTTPS. Without the section (no
// cert_file) the API is plain HTTP, as before.
//
// The certificate and key are read at start and again on SIGHUP; a reload
// that fails keeps the certificate in use. Connections already open are
// not dropped by a reload.
type TLS struct {
	// CertFile and KeyFile are PEM files: the server certificate (with any
	// intermediates after it) and its private key. Both or neither.
	CertFile string `yaml:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file,omitempty"`
	// ClientCAFile, when set, requires every client to present a
	// certificate signed by one of the PEM CAs in it (mutual TLS): a
	// client without one does not complete the handshake. It needs
	// cert_file.
	ClientCAFile string `yaml:"client_ca_file,omitempty"`
	// MinVersion is the lowest TLS version accepted: "1.2" or "1.3".
	// Empty means DefaultTLSMinVersion.
	MinVersion string `yaml:"min_version,omitempty"`
	// Admin also serves the admin listener (admin_listen) with the same
	// certificate and client verification. Default false: the admin
	// listener stays plain HTTP, on loopback by default.
	Admin bool `yaml:"admin,omitempty"`
}

// DefaultTLSMinVersion: TLS 1.2 is what every supported containerd, Docker
// and Kubernetes node speaks; 1.0 and 1.1 are deprecated (RFC 8996).
const DefaultTLSMinVersion = "1.2"

var tlsVersions = map[string]uint16{"1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}

// Enabled reports whether the API is served over TLS.
func (t TLS) Enabled() bool { return t.CertFile != "" }

// Version returns MinVersion as a crypto/tls constant (DefaultTLSMinVersion
// when empty). It is only meaningful on a validated config.
func (t TLS) Version() uint16 {
	if v, ok := tlsVersions[t.MinVersion]; ok {
		return v
	}
	return tlsVersions[DefaultTLSMinVersion]
}

// validateTLS checks the tls section: cert_file and key_file together,
// the files exist, a known min_version, and client_ca_file and admin only
// with a certificate.
func (c *Config) validateTLS(p *problems) {
	t := c.TLS
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		p.addf("tls.cert_file", "needs key_file")
	case t.KeyFile != "" && t.CertFile == "":
		p.addf("tls.key_file", "needs cert_file")
	}
	for _, f := range []struct{ name, path string }{
		{"cert_file", t.CertFile}, {"key_file", t.KeyFile}, {"client_ca_file", t.ClientCAFile},
	} {
		if f.path != "" {
			p.check("tls."+f.name, checkFile(f.path))
		}
	}
	if _, ok := tlsVersions[t.MinVersion]; !ok && t.MinVersion != "" {
		p.addf("tls.min_version", "got %q, want \"1.2\" or \"1.3\"", t.MinVersion)
	}
	if t.ClientCAFile != "" && t.CertFile == "" {
		p.addf("tls.client_ca_file", "needs cert_file: client certificates are only asked for over TLS")
	}
	if t.Admin {
		if t.CertFile == "" {
			p.addf("tls.admin", "needs cert_file")
		} else if c.AdminListen == "" {
			p.addf("tls.admin", "admin_listen is empty: there is no admin listener to serve over TLS")
		}
	}
	if t.MinVersion != "" && t.CertFile == "" && t.KeyFile == "" {
		p.addf("tls.min_version", "set without cert_file: the API is plain HTTP")
	}
}
