// Package registry is the OCI Distribution HTTP API: it parses every /v2/
// request with internal/route, asks the Authorizer it declares (adapted
// from auth in cmd/cairn) whether the client may take the Action the
// request needs, calls the small interfaces it declares (Puller, Uploader
// and the optional Mounter and ManifestPusher, implemented by the cache),
// renders every error as an OCI error body in one place, and writes one
// access log line and the HTTP metrics per request.
//
// It imports only internal/...; never cache, storage, upstream or cmd.
package registry
