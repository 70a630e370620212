// Package storage owns everything cairn keeps on disk under its data
// directory:
//
//	<data_dir>/node.json                      node identity, written at first start, never changed
//	<data_dir>/blobs/sha256/<2 hex>/<64 hex>  committed, verified, read-only blob files (sha512 alike)
//	<data_dir>/tmp/                           fills in progress (removed by Open) and upload sessions (kept)
//	<data_dir>/meta/                          badger/v4: blob, atime, link (and its repo index), drop, tag, ref, pin, upload, log, seq, usage and schema keys
//	<data_dir>/quarantine/<alg>-<hex>         files whose content did not match their digest
//	<data_dir>/clean                          present only while stopped cleanly (see reconcile.go)
//
// Blobs are content addressed and shared by every repository and namespace.
// A blob becomes visible only through [Writer.Commit], which verifies the
// digest (and the size when known), fsyncs, renames the temp file into
// blobs/ and then records its metadata: a reader never sees a partial or
// unverified file. Manifests are blobs too; [Store.PutManifest] also records
// the manifest graph (ref/ keys).
//
// The change log (changes.go, follow.go): every tag write, manifest write,
// tag delete, unlink and blob removal writes one log/<seq> entry (a
// [Change]: kind, cause, origin site, names, digest) in the write's own
// badger transaction, and seq is the last entry's: a crash keeps a write with its
// entry or neither. An eviction is one entry however many links and tags
// go with the blob. Consumers (push replication, events) read
// [Store.Changes] from their last seq and block in [Store.WaitChange],
// woken after each commit. [Store.KeepChangeLog] compacts the entries older
// than the retention window ([WithChangeRetention]); a consumer that fell
// behind them gets [ErrChangesCompacted] and rescans. Stores written before
// the log start it at their current seq: nothing is migrated.
//
// Reads are recorded in memory by [Store.Touch] and reach badger (atime/
// keys) in batches. [Store.Usage] is kept incrementally. [Store.Evict] removes the
// least recently used unpinned blobs ([Store.Pin]); a removal deletes the
// metadata before the file, and a commit publishes the file before its
// metadata, both under a per-digest lock, so a crash can only leave a file
// without metadata, which the next Open after an unclean stop re-hashes and
// adopts or quarantines. [Store.Verify] re-hashes everything on demand.
//
// Pushed blobs arrive through upload sessions ([Store.NewUpload],
// [Store.AppendUpload], [Store.CommitUpload]): a temp file plus an upload/
// record that survive a restart, committed like a Writer and pinned.
//
// Every method of [Store] and [Writer] is safe for concurrent use. Errors are
// wrapped with context; test them with errors.Is against [ErrNotFound],
// [ErrInvalidDigest], [ErrInvalidName], [ErrDigestMismatch],
// [ErrSizeMismatch], [ErrUploadUnknown], [ErrUploadOffset],
// [ErrChangesCompacted] and [ErrClosed].
//
// Storage speaks digests, names and files, never HTTP: it must not import
// net/http, nor any project package except internal/... leaves (it uses
// none today). It knows nothing of upstreams, the cluster or replication.
package storage
