// Package upstream is the client cairn uses to read from an origin registry
// (Docker Hub, GHCR, ECR, any OCI Distribution registry) and, because peers
// speak the same API, from other cairn nodes.
//
// It owns:
//   - the auth handshake (anonymous, basic, bearer tokens) through
//     go-containerregistry's transport package, built lazily per
//     (repository, action) on first use and cached in a bounded LRU;
//   - plain HTTP reads of manifests, blobs (with Range resume) and tag lists;
//   - cairn's retry policy (ggcr's own retries are never active);
//   - error classification: every failure carries an ocierr.Code.
//
// Error contract: a non-2xx answer is a *StatusError that unwraps to its
// ocierr.Code (errors.Is(err, ocierr.ManifestUnknown)). Transport failures
// (refused connections, DNS, timeouts, a failed ping) wrap ocierr.Unavailable
// and their cause, so errors.Is(err, context.Canceled) still works. Content
// that does not hash to what was asked for wraps ErrDigestMismatch and
// ocierr.Unavailable: the upstream failed, not the client.
//
// It must not import any cairn package except internal/ocierr, and it never
// uses go-containerregistry's pkg/v1/remote (no Range support, and its
// retries would delay serve-stale).
package upstream
