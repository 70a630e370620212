// Package storage owns everything cairn keeps on disk under its data
// directory:
//
//	<data_dir>/node.json                      node identity, written at first start, never changed
//	<data_dir>/blobs/sha256/<2 hex>/<64 hex>  committed, verified, read-only blob files (sha512 alike)
//	<data_dir>/tmp/                           fills in progress (removed by Open) and upload sessions (kept)
//	<data_dir>/meta/                          badger/v4: blob, atime, link (and its repo index), drop, tag, ref, pin, upload, seq, usage and schema keys
//	<data_dir>/quarantine/<alg>-<hex>         files whose content did not match their digest
//	<data_dir>/clean                          present only while stopped cleanly (see reconcile.go)
//
// Blobs are content addressed and shared by every repository and namespace.
// A blob becomes visible only through [Writer.Commit], which verifies the
// digest (and the size when known), fsyncs, renames the temp file into
// blobs/ and then records its metadata: a reader never sees a partial or
// unverified file. Manifests are blobs too; [Store.PutManifest] also records
// the manifest graph (ref/ keys). Tags and manifest writes bump a monotonic
// sequence number in the same badger transaction, which replication and
// incremental export read from.
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
// [ErrSizeMismatch], [ErrUploadUnknown] and [ErrUploadOffset].
//
// Storage speaks digests, names and files, never HTTP: it must not import
// net/http, nor any project package except internal/... leaves (it uses
// none today). It knows nothing of upstreams, the cluster or replication.
package storage
