// Package cache is cairn's pull-through engine: it resolves manifests, tags
// and blobs local-first, fetches misses from a Source (the upstream
// registry; later a peer node), and commits only verified content. It
// also takes pushes (push.go): blob upload sessions over storage's, mounts,
// and manifests whose tags are recorded with source "push", pinned, and
// never revalidated.
//
// It may import storage, upstream and internal/...; never registry, cmd or
// cluster (it will learn a digest's owner through an interface it declares).
package cache
