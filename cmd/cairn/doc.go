// Command cairn is the pull-through caching proxy and geo-replication
// mirror. This package is the only composition root: it reads the config,
// builds the logger and the Prometheus registry, wires storage, upstream
// clients, the cache, the registry handler, auth's authorizer and the
// admin API, and runs the listeners under one errgroup until a signal
// arrives; `cairn cache` prints what the admin API answers. It decides
// nothing: access policy is auth's, the admin calls are admin's, pin
// names are canonicalised by internal/route, what a SIGHUP may change is
// internal/config's, the development CA is internal/devca's. Every other
// package is a library.
package main
