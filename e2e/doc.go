// Package e2e holds cairn's end-to-end tests: the cairn binary between real
// upstream registries (Debian's docker-registry, CNCF distribution 2.8) and
// real clients (containerd's ctr, skopeo), all on loopback.
//
// The tests skip when a tool is missing or under -short, except with CI=true,
// where a missing tool is a failure. Run them one package at a time:
//
//	go test -race -p 1 -count=1 -v ./e2e/...
//
// Set CAIRN_E2E_SNAPSHOTTER to force a containerd snapshotter (default:
// overlayfs when an overlay mount works here, else native).
package e2e
