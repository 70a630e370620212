package devca

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
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// The files Ensure keeps in its directory. Keys are written 0600.
const (
	CACert     = "ca.pem"
	CAKey      = "ca-key.pem"
	ServerCert = "server.pem"
	ServerKey  = "server-key.pem"
)

// Names are the names a development certificate for the listen address
// covers: the loopback names, and the listen host when it is a specific
// one (not empty, not an unspecified address such as 0.0.0.0).
func Names(listen string) []string {
	names := []string{"localhost", "127.0.0.1", "::1"}
	if host, _, err := net.SplitHostPort(listen); err == nil && host != "" {
		if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
			names = append(names, host)
		}
	}
	return names
}

// Ensure makes dir hold a development CA and a server certificate it
// signed for names (at least one). Files already there are reused: the
// server certificate if it is still valid for every name for a day more,
// else the CA to sign a new one; a CA that cannot be read is replaced.
func Ensure(dir string, names []string) error {
	if len(names) == 0 {
		return errors.New("a development certificate needs at least one name")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	ca, caKey, err := LoadCA(dir)
	if err != nil {
		if ca, caKey, err = newCA(dir); err != nil {
			return err
		}
	} else if serverCertValid(dir, ca, names) {
		return nil
	}
	certPEM, keyPEM, err := IssueCert(ca, caKey, names, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return err
	}
	return errors.Join(writePEM(dir, ServerKey, keyPEM), writePEM(dir, ServerCert, certPEM))
}

func serverCertValid(dir string, ca *x509.Certificate, names []string) bool {
	c, err := tls.LoadX509KeyPair(filepath.Join(dir, ServerCert), filepath.Join(dir, ServerKey))
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

// LoadCA reads the development CA kept in dir: its certificate and its
// ECDSA key. A pair that is not a CA, or not an ECDSA one, is refused.
func LoadCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	c, err := tls.LoadX509KeyPair(filepath.Join(dir, CACert), filepath.Join(dir, CAKey))
	if err != nil {
		return nil, nil, err
	}
	key, ok := c.PrivateKey.(*ecdsa.PrivateKey)
	if !ok || !c.Leaf.IsCA {
		return nil, nil, fmt.Errorf("%s: not a cairn development CA", filepath.Join(dir, CACert))
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
		writePEM(dir, CAKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})),
		writePEM(dir, CACert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	return ca, key, err
}

// IssueCert signs a one-year leaf certificate for names (DNS names or IP
// addresses, at least one) with the given usage (server or client
// authentication); the first name is its common name.
func IssueCert(ca *x509.Certificate, caKey *ecdsa.PrivateKey, names []string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte, err error) {
	if len(names) == 0 {
		return nil, nil, errors.New("a certificate needs at least one name")
	}
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
