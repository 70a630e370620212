package main

import (
	"net/http"
	"strings"
	"testing"
)

// With users configured, an anonymous ping of /v2/ is challenged even
// though anonymous pulls are allowed: the challenge is how skopeo, podman
// and docker learn to send credentials at all. Empty Basic credentials
// (what such a client sends when it has none) count as anonymous: they
// may pull, not push. A user's ping answers 200.
func TestPingChallengesAndEmptyCredentials(t *testing.T) {
	f := newPushFixture(t)
	base := f.node.url("/v2/")
	resp, _ := send(t, "GET", base, "", nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("anonymous GET /v2/: %d %q, want 401 with a Basic challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if resp, _ := send(t, "GET", base, "alice", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("alice's GET /v2/: %d, want 200", resp.StatusCode)
	}
	if resp, _ := send(t, "GET", base, ":", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v2/ with empty credentials: %d, want 401 (still anonymous)", resp.StatusCode)
	}
	// Anonymous and empty credentials may pull what exists (a 404 for a
	// missing manifest, never a 401) and may not push.
	for _, user := range []string{"", ":"} {
		resp, _ := send(t, "GET", f.node.url("/v2/registry.internal/team/app/manifests/missing"), user, nil)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("pull as %q: %d, want 404 (allowed, nothing there)", user, resp.StatusCode)
		}
		resp, _ = send(t, "POST", f.node.url("/v2/registry.internal/team/app/blobs/uploads/"), user, nil)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("push as %q: %d, want 401", user, resp.StatusCode)
		}
	}
}
