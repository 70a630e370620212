// Command cairn is the pull-through caching proxy and geo-replication
// mirror. This package is the only composition root: it reads the config,
// builds the logger and the Prometheus registry, wires storage, upstream
// clients, the cache and the registry handler, and runs the listeners under
// one errgroup until a signal arrives. Every other package is a library.
package main
