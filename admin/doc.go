// Package admin is the admin listener's HTTP API: the cache calls under
// /api/v1/cache/ (stats, verify, blob removal, tag listing, pin and unpin,
// prune), /metrics, /healthz, /readyz and /debug/pprof (API), and the JSON
// types those calls answer with, which `cairn cache` decodes and prints.
// The store operations the CLI also runs offline, on a stopped node's
// data directory (ListTags, Prune, RemoveBlob), are here too, so the two
// paths answer alike.
//
// Mutating and expensive calls need Authorization: Bearer with the
// content of admin.token_file, read on every call (it can be rotated
// without a restart); without the file they are refused. Reads are open
// to whoever reaches the listener (loopback by default).
//
// Imports: cache (the Cache it declares is what *cache.Cache offers, with
// its Stats), storage and internal/...; never registry, auth, upstream or
// cmd (internal/archtest keeps it so).
package admin
