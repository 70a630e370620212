package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/cairn-mirror/cairn/cache"
	"github.com/cairn-mirror/cairn/internal/config"
	"github.com/cairn-mirror/cairn/upstream"
)

// upstreams builds mirror namespaces' upstream origins: one client per
// endpoint, grouped in the endpoints' order, with the cache section's
// breaker settings for each endpoint.
type upstreams struct {
	metrics         *upstream.Metrics
	log             *slog.Logger
	breakerFailures int
	breakerCooldown time.Duration
}

func newUpstreams(cfg *config.Config, m *upstream.Metrics, log *slog.Logger) upstreams {
	return upstreams{metrics: m, log: log, breakerFailures: cfg.Cache.BreakerFailures, breakerCooldown: cfg.Cache.BreakerCooldown.D()}
}

// cacheNamespace builds one namespace: its upstream (none for a hosted
// namespace; for a wildcard, how to build each host's) and its cache
// settings, with the print of the credentials its endpoints log in with
// ("" for a hosted namespace).
func (b upstreams) cacheNamespace(u config.Upstream) (cache.Namespace, string, error) {
	ns := namespaceSettings(u)
	if !u.Mirror() {
		return ns, "", nil
	}
	creds, err := readEndpointCredentials(u)
	if err != nil {
		return ns, "", err
	}
	if u.Wildcard() {
		ns.ForHost = func(host string) (cache.Origin, error) { return b.origin(u, host, creds) }
		return ns, printCredentials(creds), nil
	}
	origin, err := b.origin(u, "", creds)
	if err != nil {
		return ns, "", err
	}
	ns.Origin = origin // never a nil *Group in the interface
	return ns, printCredentials(creds), nil
}

// namespaceSettings is u's cache settings, without an upstream.
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
		MaxHosts:        u.MaxHosts,
	}
}

// origin is the upstream of mirror u: one client per endpoint, logging in
// with creds (by endpoint). For a wildcard namespace, host is the host a
// request named: it replaces {host} in the URLs and names the namespace
// of the clients (what the keychain is asked by), while metrics keep the
// wildcard's name.
func (b upstreams) origin(u config.Upstream, host string, creds []credentials) (*upstream.Group, error) {
	name := u.Name
	if host != "" {
		name = host
	}
	log := b.log.With("component", "upstream", "upstream", name)
	eps := u.EffectiveEndpoints()
	members := make([]upstream.Member, 0, len(eps))
	for i, e := range eps {
		rawURL := strings.ReplaceAll(e.URL, config.HostPlaceholder, host)
		opts := []upstream.Option{
			upstream.WithMetrics(b.metrics),
			upstream.WithMetricsNamespace(u.Name),
			upstream.WithLogger(log),
			upstream.WithUserAgent("cairn/" + version),
			upstream.WithRepositoryPrefix(e.RepositoryPrefix),
			upstream.WithLimits(e.MaxConnections, e.MaxRequestsPerSecond),
		}
		if host != "" {
			opts = append(opts, upstream.WithEndpointName(e.URL)) // the template: labels stay bounded
		}
		switch c := creds[i]; {
		case c.keychain:
			opts = append(opts, upstream.WithKeychain(authn.DefaultKeychain))
		case c.username != "":
			opts = append(opts, upstream.WithBasic(c.username, c.password))
		}
		if t := e.TLS; t != nil {
			opts = append(opts, upstream.WithTLS(upstream.TLS{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile, SystemRoots: *t.SystemRoots}))
		}
		if e.Proxy != "" {
			pu, err := url.Parse(e.Proxy)
			if err != nil {
				return nil, fmt.Errorf("upstream %s: endpoint %d: proxy: %w", u.Name, i, err)
			}
			opts = append(opts, upstream.WithProxy(pu))
		}
		client, err := upstream.New(name, rawURL, opts...)
		if err != nil {
			return nil, fmt.Errorf("upstream %s: endpoint %d: %w", u.Name, i, err)
		}
		members = append(members, upstream.Member{Client: client, Pull: e.Has(config.CapPull), Resolve: e.Has(config.CapResolve)})
	}
	return upstream.NewGroup(name, members, upstream.GroupOptions{
		BreakerFailures: b.breakerFailures, BreakerCooldown: b.breakerCooldown,
		Metrics: b.metrics, MetricsNamespace: u.Name, Logger: log,
	})
}

// credentials are what an endpoint logs in with: nothing, a user and the
// password file's password, or the docker keychain.
type credentials struct {
	username, password string
	keychain           bool
}

// readEndpointCredentials reads the credentials of each of u's endpoints,
// in order.
func readEndpointCredentials(u config.Upstream) ([]credentials, error) {
	eps := u.EffectiveEndpoints()
	out := make([]credentials, len(eps))
	for i, e := range eps {
		switch c := e.Credentials; {
		case c == nil || c.Anonymous:
		case c.Keychain:
			out[i] = credentials{keychain: true}
		case c.Basic != nil:
			pw, err := readSecret(c.Basic.PasswordFile)
			if err != nil {
				return nil, fmt.Errorf("upstream %s: endpoint %d: password_file: %w", u.Name, i, err)
			}
			out[i] = credentials{username: c.Basic.Username, password: pw}
		}
	}
	return out, nil
}

// printCredentials identifies the endpoints' credentials without holding
// a password. A keychain's answer cannot be known without asking it (a
// credential helper may run, or call out): a namespace with one has the
// print "", which matches nothing, so every reload gives it a new
// upstream, which asks the keychain again on its first request.
func printCredentials(creds []credentials) string {
	h := sha256.New()
	for _, c := range creds {
		if c.keychain {
			return ""
		}
		fmt.Fprintf(h, "%q\x00%q\x00", c.username, c.password)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// readSecret reads a secret file, without its trailing newline.
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}
