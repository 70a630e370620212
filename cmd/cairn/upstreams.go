package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/cairn-mirror/cairn/cache"
	"github.com/cairn-mirror/cairn/internal/config"
	"github.com/cairn-mirror/cairn/upstream"
)

// cacheNamespace builds one namespace: its upstream client (none for a
// hosted namespace) and its cache settings, with the print of the
// credentials the client logs in with ("" for a hosted namespace).
func cacheNamespace(u config.Upstream, m *upstream.Metrics, log *slog.Logger) (cache.Namespace, string, error) {
	ns := namespaceSettings(u)
	if !u.Mirror() {
		return ns, "", nil
	}
	cred, err := readCredentials(u)
	if err != nil {
		return ns, "", err
	}
	client, err := upstreamClient(u, cred, m, log)
	if err != nil {
		return ns, "", err
	}
	ns.Origin = client // never a nil *Client in the interface
	return ns, cred.print(), nil
}

// namespaceSettings is u's cache settings, without an upstream client.
func namespaceSettings(u config.Upstream) cache.Namespace {
	return cache.Namespace{
		Name:            u.Name,
		TagTTL:          u.TagTTL.D(),
		ServeStale:      *u.ServeStale,
		FillIdleTimeout: u.FillIdleTimeout.D(),
		ServeStaleOn404: *u.ServeStaleOn404,
		HeadTimeout:     u.HeadTimeout.D(),
		RequestTimeout:  u.RequestTimeout.D(),
		ReferrersTTL:    u.ReferrersTTL.D(),
		RateLimitFloor:  u.RateLimitFloor,
		Private:         u.Credentialed(),
	}
}

// upstreamClient is the client of mirror u, logging in with cred.
func upstreamClient(u config.Upstream, cred credentials, m *upstream.Metrics, log *slog.Logger) (*upstream.Client, error) {
	opts := []upstream.Option{
		upstream.WithMetrics(m),
		upstream.WithLogger(log.With("component", "upstream", "upstream", u.Name)),
		upstream.WithUserAgent("cairn/" + version),
	}
	switch {
	case cred.keychain:
		opts = append(opts, upstream.WithKeychain(authn.DefaultKeychain))
	case cred.username != "":
		opts = append(opts, upstream.WithBasic(cred.username, cred.password))
	}
	client, err := upstream.New(u.Name, u.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", u.Name, err)
	}
	return client, nil
}

// credentials are what a mirror logs in to its upstream with: nothing, a
// user and the password_file's password, or the docker keychain.
type credentials struct {
	username, password string
	keychain           bool
}

func readCredentials(u config.Upstream) (credentials, error) {
	switch {
	case u.Keychain:
		return credentials{keychain: true}, nil
	case u.Username != "":
		pw, err := readSecret(u.PasswordFile)
		if err != nil {
			return credentials{}, fmt.Errorf("upstream %s: password_file: %w", u.Name, err)
		}
		return credentials{username: u.Username, password: pw}, nil
	}
	return credentials{}, nil
}

// print identifies the credentials without holding the password. A
// keychain's answer cannot be known without asking it (a credential
// helper may run, or call out): its print is "" and matches nothing, so
// every reload gives a keychain namespace a new client, which asks the
// keychain again on its first request.
func (c credentials) print() string {
	if c.keychain {
		return ""
	}
	sum := sha256.Sum256([]byte(c.username + "\x00" + c.password))
	return hex.EncodeToString(sum[:])
}

// readSecret reads a secret file, without its trailing newline.
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}
