package main

import (
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
// hosted namespace) and its cache settings.
func cacheNamespace(u config.Upstream, m *upstream.Metrics, log *slog.Logger) (cache.Namespace, error) {
	ns := cache.Namespace{
		Name:            u.Name,
		TagTTL:          u.TagTTL.D(),
		ServeStale:      *u.ServeStale,
		FillIdleTimeout: u.FillIdleTimeout.D(),
		ServeStaleOn404: *u.ServeStaleOn404,
		HeadTimeout:     u.HeadTimeout.D(),
		RequestTimeout:  u.RequestTimeout.D(),
		RateLimitFloor:  u.RateLimitFloor,
		Private:         u.Username != "" || u.Keychain,
	}
	if !u.Mirror() {
		return ns, nil
	}
	opts := []upstream.Option{
		upstream.WithMetrics(m),
		upstream.WithLogger(log.With("component", "upstream", "upstream", u.Name)),
		upstream.WithUserAgent("cairn/" + version),
	}
	switch {
	case u.Keychain:
		opts = append(opts, upstream.WithKeychain(authn.DefaultKeychain))
	case u.Username != "":
		pw, err := readSecret(u.PasswordFile)
		if err != nil {
			return ns, fmt.Errorf("upstream %s: password_file: %w", u.Name, err)
		}
		opts = append(opts, upstream.WithBasic(u.Username, pw))
	}
	client, err := upstream.New(u.Name, u.URL, opts...)
	if err != nil {
		return ns, fmt.Errorf("upstream %s: %w", u.Name, err)
	}
	ns.Upstream = client
	return ns, nil
}

// readSecret reads a secret file, without its trailing newline.
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}
