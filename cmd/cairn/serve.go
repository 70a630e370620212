package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"
	"golang.org/x/net/netutil"
	"golang.org/x/sync/errgroup"

	"github.com/cairn-mirror/cairn/admin"
	"github.com/cairn-mirror/cairn/auth"
	"github.com/cairn-mirror/cairn/cache"
	"github.com/cairn-mirror/cairn/internal/config"
	"github.com/cairn-mirror/cairn/internal/drain"
	"github.com/cairn-mirror/cairn/internal/route"
	"github.com/cairn-mirror/cairn/registry"
	"github.com/cairn-mirror/cairn/storage"
	"github.com/cairn-mirror/cairn/upstream"
)

const (
	// readHeaderTimeout ends a connection whose request headers are not
	// all there in time (slowloris); idleTimeout one kept alive unused.
	readHeaderTimeout = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	// shutdownGrace is how long in-flight requests get to finish on
	// SIGTERM; closeWait how long handlers still running then get to
	// return once their connections are closed.
	shutdownGrace = 15 * time.Second
	closeWait     = 10 * time.Second
)

func serveCommand(c *cli.Context) error {
	cfg, err := resolveConfig(c)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.Log.Level, cfg.Log.Format, c.App.ErrWriter)
	if err != nil {
		return err
	}
	s, err := newServer(cfg, log)
	if err != nil {
		return err
	}
	if c.String("config") != "" { // without a file, SIGHUP reloads the certificate only
		s.reload.source = func() (*config.Config, error) { return resolveConfig(c) }
	}
	if dir := c.String("tls-self-signed"); dir != "" {
		if _, err := fmt.Fprint(c.App.Writer, hostsTOML(filepath.Dir(cfg.TLS.CertFile), s.apiLn.Addr().String())); err != nil {
			s.close()
			return err
		}
	}
	return s.Run(c.Context)
}

// server is one running cairn node: its storage and its two listeners.
type server struct {
	log     *slog.Logger
	store   *storage.Store
	cache   *cache.Cache // its Run keeps the disk budget
	api     *http.Server
	apiLn   net.Listener
	admin   *http.Server // nil when admin_listen is empty
	adminLn net.Listener
	certs   *certReloader // nil without TLS
	reload  *reloader     // what SIGHUP does (reload.go)
	ready   atomic.Bool

	// handlers counts both listeners' requests in flight: the cache and
	// the store close only once every one has returned.
	handlers         drain.Handlers
	endRequests      context.CancelFunc // cancels every request's context
	grace, closeWait time.Duration      // shutdownGrace and closeWait (tests shorten them)
}

// newServer opens the data dir, wires the node and binds its listeners.
// Nothing contacts an upstream here: cairn starts with every upstream down.
func newServer(cfg *config.Config, log *slog.Logger) (_ *server, err error) {
	reg, err := newRegistry()
	if err != nil {
		return nil, err
	}
	store, err := storage.Open(cfg.DataDir, storage.WithLogger(log.With("component", "storage")), storage.WithSite(cfg.Site),
		storage.WithChangeRetention(cfg.Cache.ChangeLogRetention.D()))
	if err != nil {
		return nil, err
	}
	s := &server{log: log, store: store, grace: shutdownGrace, closeWait: closeWait}
	defer func() {
		if err != nil {
			s.close() // s, not the (nil) result: release what was opened
		}
	}()
	live, upMetrics := new(liveAuth), upstream.NewMetrics(reg)
	api, c, router, creds, err := buildAPI(cfg, store, reg, upMetrics, log, live)
	if err != nil {
		return nil, err
	}
	s.cache = c
	floor, err := registry.NewSendFloor(int64(*cfg.Limits.MinSendRate), cfg.Limits.MinSendWindow.D())
	if err != nil {
		return nil, err
	}
	requests, endRequests := context.WithCancel(context.Background())
	s.endRequests = endRequests
	s.api = s.newHTTPServer(requests, floor.Wrap(api), int(cfg.Limits.MaxHeaderBytes))
	var tlsCfg *tls.Config
	if cfg.TLS.Enabled() {
		if s.certs, err = newCertReloader(cfg.TLS.CertFile, cfg.TLS.KeyFile, log.With("component", "tls")); err != nil {
			return nil, err
		}
		if tlsCfg, err = newTLSConfig(cfg.TLS, s.certs); err != nil {
			return nil, err
		}
	}
	s.reload = newReloader(cfg, log, s.certs, live, c, upMetrics, creds)
	if s.apiLn, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	// A connection past the cap waits in the kernel's accept queue.
	s.apiLn = netutil.LimitListener(s.apiLn, cfg.Limits.MaxConnections)
	if tlsCfg != nil {
		s.apiLn = tls.NewListener(s.apiLn, tlsCfg)
	}
	if cfg.AdminListen != "" {
		var adm *admin.API
		if adm, err = admin.New(store, admin.WithCache(c, router), admin.WithCapacity(int64(cfg.Cache.MaxSize)),
			admin.WithTokenFile(cfg.Admin.TokenFile), admin.WithMetrics(reg), admin.WithReadiness(s.ready.Load),
			admin.WithLogger(log.With("component", "admin"))); err != nil {
			return nil, err
		}
		s.admin = s.newHTTPServer(requests, adm, int(cfg.Limits.MaxHeaderBytes))
		if s.adminLn, err = net.Listen("tcp", cfg.AdminListen); err != nil {
			return nil, fmt.Errorf("admin_listen: %w", err)
		}
		if tlsCfg != nil && cfg.TLS.Admin {
			s.adminLn = tls.NewListener(s.adminLn, tlsCfg)
		}
	}
	return s, nil
}

// buildAPI wires upstream clients, the cache and the registry handler,
// and returns the API's router too (the admin API canonicalises pins
// with it).
// live receives the authorizer, which reloads swap. prints are the
// mirrors' credentials (credentials.print) as their clients read them, by
// namespace, for reloads to tell which changed.
func buildAPI(cfg *config.Config, store *storage.Store, reg *prometheus.Registry, upMetrics *upstream.Metrics, log *slog.Logger, live *liveAuth) (
	_ http.Handler, _ *cache.Cache, _ *route.Router, prints map[string]string, err error) {
	prints = make(map[string]string, len(cfg.Upstreams))
	nss := make([]cache.Namespace, 0, len(cfg.Upstreams))
	routes := make([]route.Namespace, 0, len(cfg.Upstreams))
	deletes := make(map[string]registry.Deletes, len(cfg.Upstreams))
	build := newUpstreams(cfg, upMetrics, log)
	for _, u := range cfg.Upstreams {
		deletes[u.Name] = registry.Deletes{Tags: u.Delete.Tags, Manifests: u.Delete.Manifests, Blobs: u.Delete.Blobs}
		if u.AnonymousPullsUseCredentials {
			log.Warn("anonymous clients pull through this namespace's upstream credentials (anonymous_pulls_use_credentials)", "namespace", u.Name)
		}
		ns, fp, err := build.cacheNamespace(u)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		if u.Mirror() {
			prints[u.Name] = fp
		}
		nss = append(nss, ns)
		routes = append(routes, routeNamespace(u))
	}
	router, err := route.NewRouter(routes)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	pins, err := router.PinRules(cfg.Cache.Pin)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("cache.pin: %w", err)
	}
	c, err := cache.New(store, nss,
		cache.WithLogger(log.With("component", "cache")),
		cache.WithRegisterer(reg),
		cache.WithBreaker(cfg.Cache.BreakerFailures, cfg.Cache.BreakerCooldown.D()),
		cache.WithLimit(cache.Limit{Max: int64(cfg.Cache.MaxSize), High: cfg.Cache.EvictHigh, Low: cfg.Cache.EvictLow}),
		cache.WithPins(pins, cfg.Cache.PinPlatforms...),
		cache.WithDefaultPlatform(cfg.Cache.DefaultPlatform),
		cache.WithUploadExpiry(cfg.Uploads.Expire.D()),
		cache.WithUploadLimits(cache.UploadLimits{MaxSize: int64(cfg.Uploads.MaxSize),
			Sessions: cfg.Uploads.MaxSessions, SessionsPerUser: cfg.Uploads.MaxSessionsPerUser}),
		cache.WithFillBound(cfg.Cache.FillMaxDuration.D()))
	if err != nil {
		return nil, nil, nil, nil, err
	}
	authz, err := auth.NewAuthorizer(cfg.Auth, router, auth.WithLogger(log.With("component", "token")))
	if err != nil {
		return nil, nil, nil, nil, err
	}
	h, err := registry.New(router, c, registry.WithLogger(log.With("component", "api")), registry.WithRegisterer(reg),
		registry.WithAuthorizer(live), registry.WithPusher(c), registry.WithDeletes(deletes))
	if err != nil {
		return nil, nil, nil, nil, err
	}
	live.use(authz)
	return live.withTokenEndpoint(h), c, router, prints, nil
}

// newHTTPServer serves h, counted in s.handlers, with requests' contexts
// derived from requests (cancelled once shutdown closes the connections)
// and request headers capped at maxHeader bytes (431 past it).
func (s *server) newHTTPServer(requests context.Context, h http.Handler, maxHeader int) *http.Server {
	return &http.Server{
		Handler:           s.handlers.Track(h),
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeader,
		BaseContext:       func(net.Listener) context.Context { return requests },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// Run serves until ctx ends, then drains in-flight requests and closes the
// store.
func (s *server) Run(ctx context.Context) error {
	hup := notifySIGHUP() // before serving: a SIGHUP must never find the default (exit)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.reload.runOnSIGHUP(gctx, hup) })
	g.Go(func() error { return serveOn(s.api, s.apiLn) })
	g.Go(func() error { return s.cache.Run(gctx) })
	g.Go(func() error { return s.cache.KeepPins(gctx) })
	g.Go(func() error { return s.cache.KeepUploads(gctx) })
	g.Go(func() error { return s.store.KeepChangeLog(gctx) })
	if s.admin != nil {
		g.Go(func() error { return serveOn(s.admin, s.adminLn) })
	}
	s.ready.Store(true)
	s.log.Info("cairn serving", "listen", s.apiLn.Addr().String(), "admin_listen", s.adminAddr(), "tls", s.certs != nil, "node_id", s.store.Node().NodeID, "version", version)
	g.Go(func() error {
		<-gctx.Done()
		s.ready.Store(false)
		s.shutdown(context.WithoutCancel(gctx))
		return nil
	})
	err := g.Wait() // shutdown, in g, has waited for the handlers
	s.cache.Close() // fills still running end before the store closes
	return errors.Join(err, s.store.Close())
}

// shutdown lets in-flight requests finish for s.grace, then closes what is
// left: a long pull must not turn a SIGTERM into a failed exit. Closing a
// connection ends its handler's writes, and the requests' contexts are
// cancelled with it (fills run on their own); then shutdown waits, for
// s.closeWait at most, until every handler has returned, so that none
// runs on the cache and the store while they close.
func (s *server) shutdown(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, s.grace)
	defer cancel()
	for _, srv := range []*http.Server{s.api, s.admin} {
		if srv == nil {
			continue
		}
		if err := srv.Shutdown(sctx); err != nil {
			s.log.Warn("requests still running after the shutdown grace period: closing them", "err", err)
			srv.Close()
		}
	}
	s.endRequests()
	wctx, cancel := context.WithTimeout(ctx, s.closeWait)
	defer cancel()
	if err := s.handlers.Wait(wctx); err != nil {
		s.log.Error("handlers still running after their connections closed: the cache and the store close under them", "err", err)
	}
}

func serveOn(srv *http.Server, ln net.Listener) error {
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (s *server) adminAddr() string {
	if s.adminLn == nil {
		return ""
	}
	return s.adminLn.Addr().String()
}

// close releases what newServer opened when it fails half way.
func (s *server) close() {
	for _, ln := range []net.Listener{s.apiLn, s.adminLn} {
		if ln != nil {
			ln.Close()
		}
	}
	s.store.Close()
}

// routeNamespace is how the API's router sees a configured namespace.
func routeNamespace(u config.Upstream) route.Namespace {
	return route.Namespace{Name: u.Name, Aliases: u.Aliases, LibraryPrefix: *u.LibraryPrefix, Default: u.Default, Mirror: u.Mirror(), Wildcard: u.Wildcard()}
}
