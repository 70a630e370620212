package admin

import (
	"time"

	"github.com/cairn-mirror/cairn/cache"
	"github.com/cairn-mirror/cairn/storage"
)

// The admin cache API's paths, JSON over the admin listener:
//
//	GET    PathStats          CacheStats
//	POST   PathVerify         VerifyResult   (bearer token)
//	DELETE PathBlobs+{digest} RemoveResult   (bearer token)
//	GET    PathRepos          []TagRow
//	POST   PathPin            PinResult      (bearer token) RefRequest
//	POST   PathUnpin          PinResult      (bearer token) RefRequest
//	POST   PathPrune          PruneResult    (bearer token) PruneRequest
//
// Errors are {"error": "..."} (ErrorBody) with a matching status.
const (
	PathStats  = "/api/v1/cache/stats"
	PathVerify = "/api/v1/cache/verify"
	PathBlobs  = "/api/v1/cache/blobs/"
	PathRepos  = "/api/v1/cache/repos"
	PathPin    = "/api/v1/cache/pin"
	PathUnpin  = "/api/v1/cache/unpin"
	PathPrune  = "/api/v1/cache/prune"
)

// PinReason is the pin reason of the pin and unpin calls.
const PinReason = "cli"

// CacheStats is the answer of GET PathStats. CapacityBytes is
// cache.max_size (0: no cap); nil when unknown (offline, without a config).
type CacheStats struct {
	UsedBytes     int64       `json:"used_bytes"`
	Blobs         int         `json:"blobs"`
	CapacityBytes *int64      `json:"capacity_bytes,omitempty"`
	SinceStart    *SinceStart `json:"since_start,omitempty"` // nil offline
}

// SinceStart is what the running node did since it started.
type SinceStart struct {
	Hits         uint64  `json:"hits"`
	Misses       uint64  `json:"misses"`
	HitRatio     float64 `json:"hit_ratio"`
	ServedBytes  int64   `json:"served_bytes"`
	FetchedBytes int64   `json:"fetched_bytes"`
	SavedBytes   int64   `json:"saved_bytes"` // served without fetching: bytes the upstream was spared
}

func newSinceStart(st cache.Stats) *SinceStart {
	s := &SinceStart{Hits: st.Hits, Misses: st.Misses, ServedBytes: st.ServedBytes, FetchedBytes: st.FetchedBytes}
	if total := st.Hits + st.Misses; total > 0 {
		s.HitRatio = float64(st.Hits) / float64(total)
	}
	s.SavedBytes = max(st.ServedBytes-st.FetchedBytes, 0)
	return s
}

// VerifyResult is storage.VerifyReport with stable JSON names.
type VerifyResult struct {
	Checked     int      `json:"checked"`
	Bytes       int64    `json:"bytes"`
	Quarantined []string `json:"quarantined"` // never null
}

// NewVerifyResult is r as the API answers it.
func NewVerifyResult(r storage.VerifyReport) VerifyResult {
	q := r.Quarantined
	if q == nil {
		q = []string{}
	}
	return VerifyResult{Checked: r.Checked, Bytes: r.Bytes, Quarantined: q}
}

// RemoveResult is the answer of DELETE PathBlobs+{digest}.
type RemoveResult struct {
	Removed string `json:"removed"`
}

// TagRow is one tag record of GET PathRepos. Bytes is the size of the
// stored part of the tag's manifest closure (storage.Closure).
type TagRow struct {
	Namespace string    `json:"namespace"`
	Repo      string    `json:"repo"`
	Tag       string    `json:"tag"`
	Digest    string    `json:"digest"`
	MediaType string    `json:"media_type"`
	CheckedAt time.Time `json:"checked_at"`
	Bytes     int64     `json:"bytes"`
}

// RefRequest is the body of the pin and unpin calls: one image,
// <namespace>/<repo>:<tag> or @<digest>, named as a pull names it after
// the namespace (docker.io/alpine:3.19 is docker.io/library/alpine:3.19).
type RefRequest struct {
	Ref string `json:"ref"`
}

// PinResult is the answer of the pin and unpin calls; Ref is canonical.
type PinResult struct {
	Ref    string `json:"ref"`
	Pinned bool   `json:"pinned"`
	Reason string `json:"reason"`
}

// PruneRequest is the body of POST PathPrune: a Go duration ("720h") or a
// whole number of days ("30d"), see ParseAge.
type PruneRequest struct {
	OlderThan string `json:"older_than"`
}

// PruneResult is what a prune removed.
type PruneResult struct {
	Removed []string `json:"removed"` // never null
	Bytes   int64    `json:"bytes"`
}

func newPruneResult(evicted []storage.Evicted) PruneResult {
	res := PruneResult{Removed: make([]string, 0, len(evicted))}
	for _, ev := range evicted {
		res.Removed = append(res.Removed, ev.Digest)
		res.Bytes += ev.Size
	}
	return res
}

// ErrorBody is the answer of a call that failed.
type ErrorBody struct {
	Error string `json:"error"`
}

// DuReport is what `cairn cache du --json` prints: the stats and the tag
// rows summed by namespace (ByNamespace).
type DuReport struct {
	CacheStats
	Namespaces []NamespaceUsage `json:"namespaces"`
}

// NamespaceUsage sums the stored closures of a namespace's tags. A blob
// shared by several tags or namespaces is counted in each.
type NamespaceUsage struct {
	Namespace string `json:"namespace"`
	Tags      int    `json:"tags"`
	Bytes     int64  `json:"bytes"`
}

// ByNamespace sums tag rows per namespace, in the rows' order (ListTags
// and PathRepos give them sorted by namespace); never nil.
func ByNamespace(rows []TagRow) []NamespaceUsage {
	out := []NamespaceUsage{}
	for _, r := range rows {
		if len(out) == 0 || out[len(out)-1].Namespace != r.Namespace {
			out = append(out, NamespaceUsage{Namespace: r.Namespace})
		}
		out[len(out)-1].Tags++
		out[len(out)-1].Bytes += r.Bytes
	}
	return out
}
