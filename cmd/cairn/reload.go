package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/cairn-mirror/cairn/auth"
	"github.com/cairn-mirror/cairn/cache"
	"github.com/cairn-mirror/cairn/internal/config"
	"github.com/cairn-mirror/cairn/registry"
	"github.com/cairn-mirror/cairn/upstream"
)

// reloader is what SIGHUP (systemctl reload) does: read the config file
// again, resolved as at start (flags > env > file > default), validate
// it, and apply all of what may change while the node runs, or nothing:
//   - tls.cert_file and key_file: the certificate of new connections;
//   - the auth section, the htpasswd file and token key read again: a new
//     authorizer, swapped whole (liveAuth), the failed-login limiter kept;
//   - per namespace, its cache settings (tag_ttl, serve_stale,
//     serve_stale_on_404, fill_idle_timeout, head_timeout,
//     request_timeout, ratelimit_floor, anonymous_pulls_use_credentials)
//     and its credentials (username, password_file and what it holds,
//     keychain): a new upstream client where they changed.
//
// Every other field needs a restart: a change to it is logged, field by
// field, and left as it runs (config.Reloadable decides which is which).
// A node started without a config file reloads its certificate only. One
// reload runs at a time.
type reloader struct {
	mu      sync.Mutex
	source  func() (*config.Config, error) // nil: started without a config file
	running *config.Config                 // what the node runs: the start's, then each reload's
	prints  map[string]string              // mirrors' credentials (credentials.print), by namespace

	certs   *certReloader // nil without TLS
	auth    *liveAuth
	cache   *cache.Cache
	metrics *upstream.Metrics
	root    *slog.Logger // for the parts a reload builds
	log     *slog.Logger
}

// newReloader reloads the node that runs cfg; prints are its mirrors'
// credentials as read before their clients were built.
func newReloader(cfg *config.Config, log *slog.Logger, certs *certReloader, auth *liveAuth, c *cache.Cache, m *upstream.Metrics, prints map[string]string) *reloader {
	return &reloader{running: cfg, prints: prints, certs: certs, auth: auth, cache: c, metrics: m, root: log, log: log.With("component", "reload")}
}

// runOnSIGHUP reloads on each signal from hup until ctx ends. The caller
// registers hup (notifySIGHUP) before serving, so that a SIGHUP never
// finds the default action (exit) in place.
func (r *reloader) runOnSIGHUP(ctx context.Context, hup chan os.Signal) error {
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			r.reload()
		}
	}
}

func notifySIGHUP() chan os.Signal {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	return hup
}

// reload re-reads and applies the config, logging one line: "config
// reloaded" with what changed, or "config reload failed" with every
// problem (the running config then stays whole). Each field that needs a
// restart gets a warning of its own.
func (r *reloader) reload() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.source == nil {
		r.reloadCertOnly()
		return
	}
	next, err := r.source()
	if err != nil {
		r.log.Error("config reload failed: the running config stays", "err", err)
		return
	}
	eff := config.Reloadable(r.running, next)
	restart := config.Diff(eff, next)
	if err := eff.Validate(); err != nil {
		r.log.Error("config reload failed: the running config stays", "err",
			fmt.Errorf("the file, with the fields that need a restart kept as they run (%s), is invalid: %w", list(restart), err))
		return
	}
	changed, err := r.apply(eff)
	if err != nil {
		r.log.Error("config reload failed: the running config stays", "err", err)
		return
	}
	for _, f := range restart {
		r.log.Warn("config reload: needs a restart, left as it runs", "field", f)
	}
	r.running = eff
	r.log.Info("config reloaded", "changed", list(changed), "needs_restart", list(restart))
}

func (r *reloader) reloadCertOnly() {
	if r.certs == nil {
		r.log.Info("config reload: nothing to reload: started without a config file (-c) and without TLS")
		return
	}
	r.certs.reloadAndLog("config_file", "none (started without -c): SIGHUP reloads the certificate only")
}

// apply builds every part eff needs before it changes any: a file that
// cannot be read, or a part that cannot be built, fails the reload whole.
// It returns what changed.
func (r *reloader) apply(eff *config.Config) ([]string, error) {
	changed := config.Diff(r.running, eff)
	var errs []error
	var cert *tls.Certificate
	if r.certs != nil {
		var err error
		cert, err = loadCert(eff.TLS.CertFile, eff.TLS.KeyFile)
		errs = append(errs, err)
	}
	authz, err := r.newAuth(eff)
	errs = append(errs, err)
	nss, prints, fresh, err := r.namespaces(eff)
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := r.cache.UpdateNamespaces(nss); err != nil {
		return nil, err
	}
	if cert != nil {
		if !bytes.Equal(cert.Leaf.Raw, r.certs.cert.Load().Leaf.Raw) {
			changed = append(changed, "tls certificate")
		}
		r.certs.use(eff.TLS.CertFile, eff.TLS.KeyFile, cert)
	}
	r.auth.use(authz)
	r.prints = prints
	for _, name := range fresh {
		changed = append(changed, "upstreams["+name+"] credentials (a new upstream client)")
	}
	return changed, nil
}

// newAuth builds the authorizer of eff's auth section. The failed-login
// counts go on where they were, and the router is the running one: what
// routing reads needs a restart (config.Reloadable).
func (r *reloader) newAuth(eff *config.Config) (*auth.Authorizer, error) {
	return r.auth.current().Reload(eff.Auth)
}

// namespaces are eff's cache settings; a mirror keeps its upstream
// client unless its credentials changed (fresh names those that did).
func (r *reloader) namespaces(eff *config.Config) (nss []cache.Namespace, prints map[string]string, fresh []string, err error) {
	running := map[string]cache.Namespace{}
	for _, ns := range r.cache.Namespaces() {
		running[ns.Name] = ns
	}
	build := newUpstreams(eff, r.metrics, r.root)
	prints = map[string]string{}
	var errs []error
	for _, u := range eff.Upstreams {
		ns := namespaceSettings(u)
		ns.Origin, ns.ForHost = running[u.Name].Origin, running[u.Name].ForHost
		if u.Mirror() {
			creds, err := readEndpointCredentials(u)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if p, was := printCredentials(creds), r.prints[u.Name]; p == "" || p != was {
				built, _, err := build.cacheNamespace(u)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				ns.Origin, ns.ForHost = built.Origin, built.ForHost
				fresh = append(fresh, u.Name)
			}
			prints[u.Name] = printCredentials(creds)
		}
		nss = append(nss, ns)
	}
	return nss, prints, fresh, errors.Join(errs...)
}

func list(fields []string) string {
	if len(fields) == 0 {
		return "none"
	}
	return strings.Join(fields, ", ")
}

// liveAuth is the API's authorizer and token endpoint: the
// auth.Authorizer a reload built last, swapped whole. A call reads the
// current one once.
type liveAuth struct {
	cur atomic.Pointer[auth.Authorizer]
}

func (l *liveAuth) use(a *auth.Authorizer)    { l.cur.Store(a) }
func (l *liveAuth) current() *auth.Authorizer { return l.cur.Load() }

// Authorize implements registry.Authorizer with the current authorizer.
func (l *liveAuth) Authorize(r *http.Request, repo string, action registry.Action) (string, error) {
	return l.cur.Load().Authorize(r, repo, authAction(action))
}

// authAction is the auth package's name for a registry action: each
// package has an Action type of its own, since neither imports the other.
// An unknown action is 0, which auth refuses.
func authAction(a registry.Action) auth.Action {
	switch a {
	case registry.ActionPull:
		return auth.Pull
	case registry.ActionPush:
		return auth.Push
	case registry.ActionDelete:
		return auth.Delete
	case registry.ActionReplicate:
		return auth.Replicate
	}
	return 0
}

// withTokenEndpoint serves the token endpoint beside api while the
// current auth section has one (auth.token). It does not go through a
// ServeMux: that would clean and redirect the API's paths, which the
// registry parses itself.
func (l *liveAuth) withTokenEndpoint(api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a := l.cur.Load(); r.URL.Path == auth.TokenPath && a.IssuesTokens() {
			a.ServeToken(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}
