package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testToken = "s3cret-admin-token"

// tokenFixture is newFixture with admin.token_file set; it returns the
// fixture and the token file's path.
func tokenFixture(t *testing.T) (*fixture, string) {
	t.Helper()
	tok := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(tok, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	f.node.stop(t)
	f.node = startNode(t, testConfig(t, f.dataDir, f.docker.host(), f.ghcr.host(), "admin: {token_file: '"+tok+"'}"))
	return f, tok
}

func (n *node) adminURL() string { return "http://" + n.s.adminLn.Addr().String() }

// pullLayer fetches the first layer of the fixture image through the node
// and returns its digest.
func pullLayer(t *testing.T, f *fixture) string {
	t.Helper()
	layers, err := f.img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d := mustDigest(t, layers[0])
	if _, err := readBlob(f.node.url("/v2/library/alpine/blobs/" + d)); err != nil {
		t.Fatalf("pull %s: %v", d, err)
	}
	return d
}

func statsJSON(t *testing.T, args ...string) cacheStats {
	t.Helper()
	out, err := runCLI(t, append([]string{"cache", "stats", "--json"}, args...)...)
	if err != nil {
		t.Fatalf("cache stats %v: %v", args, err)
	}
	var st cacheStats
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("cache stats --json: %v\n%s", err, out)
	}
	return st
}

func TestCacheStats(t *testing.T) {
	f := newFixture(t)
	pullLayer(t, f)
	st := statsJSON(t, "--admin", f.node.adminURL())
	if st.UsedBytes <= 0 || st.Blobs < 1 || st.CapacityBytes == nil || *st.CapacityBytes != 0 {
		t.Errorf("stats after a pull: %+v, want used_bytes > 0, blobs >= 1, capacity_bytes 0", st)
	}
	out, err := runCLI(t, "cache", "stats", "--admin", f.node.adminURL())
	if err != nil || !strings.Contains(out, "USED") || !strings.Contains(out, "unlimited") {
		t.Errorf("cache stats table: %q, %v", out, err)
	}
}

func TestCacheVerifyNeedsToken(t *testing.T) {
	f, tok := tokenFixture(t)
	pullLayer(t, f)
	admin := f.node.adminURL()

	out, err := runCLI(t, "cache", "verify", "--json", "--admin", admin, "--token-file", tok)
	if err != nil {
		t.Fatalf("verify with the token: %v", err)
	}
	var res verifyResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Checked < 1 || len(res.Quarantined) != 0 {
		t.Errorf("verify: %+v (%v), want >= 1 checked and nothing quarantined\n%s", res, err, out)
	}
	if _, err := runCLI(t, "cache", "verify", "--admin", admin); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("verify without a token: got %v, want a 401 error", err)
	}
	resp, _ := get(t, "POST", admin+"/api/v1/cache/verify", "Authorization", "Bearer wrong")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("verify with a wrong token: status %d, want 401", resp.StatusCode)
	}
}

func TestCacheGuardedCallsWithoutTokenFile(t *testing.T) {
	f := newFixture(t)
	admin := f.node.adminURL()
	for _, c := range []struct{ method, path string }{
		{"POST", "/api/v1/cache/verify"},
		{"DELETE", "/api/v1/cache/blobs/sha256:" + strings.Repeat("0", 64)},
	} {
		resp, body := get(t, c.method, admin+c.path, "Authorization", "Bearer anything")
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "admin.token_file is not set") {
			t.Errorf("%s %s without admin.token_file: %d %s, want 403 naming admin.token_file", c.method, c.path, resp.StatusCode, body)
		}
	}
}

func TestCacheRmRefetches(t *testing.T) {
	f, tok := tokenFixture(t)
	d := pullLayer(t, f)
	admin := f.node.adminURL()
	if n := f.docker.count("GET", "/blobs/"+d); n != 1 {
		t.Fatalf("upstream GETs of %s after the first pull: %d, want 1", d, n)
	}
	if _, err := runCLI(t, "cache", "rm", "--admin", admin, d); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("rm without a token: got %v, want a 401 error", err)
	}
	out, err := runCLI(t, "cache", "rm", "--admin", admin, "--token-file", tok, d)
	if err != nil || !strings.Contains(out, d) {
		t.Fatalf("rm: %q, %v", out, err)
	}
	if _, err := runCLI(t, "cache", "rm", "--admin", admin, "--token-file", tok, d); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("rm of a blob no longer cached: got %v, want a 404 error", err)
	}
	pullLayer(t, f)
	if n := f.docker.count("GET", "/blobs/"+d); n != 2 {
		t.Errorf("upstream GETs of %s after rm and a second pull: %d, want 2", d, n)
	}
}

func TestCacheStatsOffline(t *testing.T) {
	f := newFixture(t)
	pullLayer(t, f)
	online := statsJSON(t, "--admin", f.node.adminURL())

	// While the node runs, the data dir is locked: offline mode says so.
	_, err := runCLI(t, "cache", "stats", "--admin", "http://127.0.0.1:1", "--data-dir", f.dataDir)
	if err == nil || !strings.Contains(err.Error(), "directory lock") {
		t.Errorf("offline stats on a running node's data dir: got %v, want an error about its lock", err)
	}
	f.node.stop(t)
	offline := statsJSON(t, "--admin", "http://127.0.0.1:1", "--data-dir", f.dataDir)
	if offline.UsedBytes != online.UsedBytes || offline.Blobs != online.Blobs {
		t.Errorf("offline stats %+v, online %+v: want the same used_bytes and blobs", offline, online)
	}
	if _, err := runCLI(t, "cache", "stats", "--admin", "http://127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "--data-dir") {
		t.Errorf("unreachable admin API without --data-dir: got %v, want a hint at --data-dir", err)
	}
	if _, err := runCLI(t, "cache", "stats", "--admin", "http://127.0.0.1:1", "--data-dir", t.TempDir()); err == nil ||
		!strings.Contains(err.Error(), "not a cairn data directory") {
		t.Errorf("offline stats on an empty dir: got %v, want a refusal", err)
	}
}
