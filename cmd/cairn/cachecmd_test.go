package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-mirror/cairn/admin"
	"github.com/cairn-mirror/cairn/storage"
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

func statsJSON(t *testing.T, args ...string) admin.CacheStats {
	t.Helper()
	out, err := runCLI(t, append([]string{"cache", "stats", "--json"}, args...)...)
	if err != nil {
		t.Fatalf("cache stats %v: %v", args, err)
	}
	var st admin.CacheStats
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
	// The same blob twice more: two hits, its bytes served three times and
	// fetched once, so twice its size saved.
	pullLayer(t, f)
	pullLayer(t, f)
	s := statsJSON(t, "--admin", f.node.adminURL()).SinceStart
	layers, _ := f.img.Layers()
	size := int64(len(layerBytes(t, layers[0])))
	if s == nil || s.Hits != 2 || s.Misses != 1 || s.FetchedBytes != size || s.SavedBytes != 2*size {
		t.Errorf("since start: %+v; want 2 hits, 1 miss, %d fetched, %d saved", s, size, 2*size)
	}
	if out, _ := runCLI(t, "cache", "stats", "--admin", f.node.adminURL()); !strings.Contains(out, "66.7% of 3") {
		t.Errorf("cache stats table lacks the hit ratio:\n%s", out)
	}
}

func TestCacheVerifyNeedsToken(t *testing.T) {
	f, tok := tokenFixture(t)
	pullLayer(t, f)
	adminURL := f.node.adminURL()

	out, err := runCLI(t, "cache", "verify", "--json", "--admin", adminURL, "--token-file", tok)
	if err != nil {
		t.Fatalf("verify with the token: %v", err)
	}
	var res admin.VerifyResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Checked < 1 || len(res.Quarantined) != 0 {
		t.Errorf("verify: %+v (%v), want >= 1 checked and nothing quarantined\n%s", res, err, out)
	}
	if _, err := runCLI(t, "cache", "verify", "--admin", adminURL); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("verify without a token: got %v, want a 401 error", err)
	}
	resp, _ := get(t, "POST", adminURL+"/api/v1/cache/verify", "Authorization", "Bearer wrong")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("verify with a wrong token: status %d, want 401", resp.StatusCode)
	}
}

func TestCacheGuardedCallsWithoutTokenFile(t *testing.T) {
	f := newFixture(t)
	adminURL := f.node.adminURL()
	for _, c := range []struct{ method, path string }{
		{"POST", "/api/v1/cache/verify"},
		{"DELETE", "/api/v1/cache/blobs/sha256:" + strings.Repeat("0", 64)},
	} {
		resp, body := get(t, c.method, adminURL+c.path, "Authorization", "Bearer anything")
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "admin.token_file is not set") {
			t.Errorf("%s %s without admin.token_file: %d %s, want 403 naming admin.token_file", c.method, c.path, resp.StatusCode, body)
		}
	}
}

func TestCacheRmRefetches(t *testing.T) {
	f, tok := tokenFixture(t)
	d := pullLayer(t, f)
	adminURL := f.node.adminURL()
	if n := f.docker.count("GET", "/blobs/"+d); n != 1 {
		t.Fatalf("upstream GETs of %s after the first pull: %d, want 1", d, n)
	}
	if _, err := runCLI(t, "cache", "rm", "--admin", adminURL, d); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("rm without a token: got %v, want a 401 error", err)
	}
	out, err := runCLI(t, "cache", "rm", "--admin", adminURL, "--token-file", tok, d)
	if err != nil || !strings.Contains(out, d) {
		t.Fatalf("rm: %q, %v", out, err)
	}
	if _, err := runCLI(t, "cache", "rm", "--admin", adminURL, "--token-file", tok, d); err == nil || !strings.Contains(err.Error(), "404") {
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

// alpineRef is the fixture image's tag in canonical form.
const alpineRef = "docker.io/library/alpine:3.19"

// pullImage pulls the fixture image's manifest, config and layers through
// the node and returns their digests and total size.
func pullImage(t *testing.T, n *node, f *fixture) ([]string, int64) {
	t.Helper()
	resp, body := get(t, "GET", n.url("/v2/library/alpine/manifests/3.19"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("pull manifest: %d %s", resp.StatusCode, body)
	}
	cfg, err := f.img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	digests, size := []string{digestOf(body), cfg.String()}, int64(len(body))
	layers, err := f.img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		digests = append(digests, mustDigest(t, l))
	}
	for _, d := range digests[1:] {
		b, err := readBlob(n.url("/v2/library/alpine/blobs/" + d))
		if err != nil {
			t.Fatalf("pull %s: %v", d, err)
		}
		size += int64(len(b))
	}
	return digests, size
}

// upstreamBlobGETs counts the upstream GETs of the given blobs.
func upstreamBlobGETs(f *fixture, digests []string) int {
	n := 0
	for _, d := range digests {
		n += f.docker.count("GET", "/blobs/"+d)
	}
	return n
}

func lsJSON(t *testing.T, args ...string) []admin.TagRow {
	t.Helper()
	out, err := runCLI(t, append([]string{"cache", "ls", "--json"}, args...)...)
	if err != nil {
		t.Fatalf("cache ls %v: %v", args, err)
	}
	var rows []admin.TagRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("cache ls --json: %v\n%s", err, out)
	}
	return rows
}

func TestCacheLs(t *testing.T) {
	f := newFixture(t)
	digests, size := pullImage(t, f.node, f)
	rows := lsJSON(t, "--admin", f.node.adminURL())
	if len(rows) != 1 {
		t.Fatalf("ls after one pull: got %d rows, want 1: %+v", len(rows), rows)
	}
	r := rows[0]
	if r.Namespace+"/"+r.Repo+":"+r.Tag != alpineRef || r.Digest != digests[0] || r.Bytes != size || r.CheckedAt.IsZero() {
		t.Errorf("ls row: got %+v, want %s -> %s, %d bytes, a checked_at", r, alpineRef, digests[0], size)
	}
	out, err := runCLI(t, "cache", "ls", "--admin", f.node.adminURL())
	if err != nil || !strings.Contains(out, "docker.io/library/alpine") || !strings.Contains(out, shortDigest(digests[0])) {
		t.Errorf("ls table: got %q, %v, want the repository and short digest", out, err)
	}
	f.node.stop(t)
	offline := lsJSON(t, "--admin", "http://127.0.0.1:1", "--data-dir", f.dataDir)
	if len(offline) != 1 || offline[0].Bytes != size || offline[0].Digest != r.Digest {
		t.Errorf("offline ls: got %+v, want the online row %+v", offline, r)
	}
}

// pinReasons opens the stopped node's data dir and returns the pin
// reasons of each digest.
func pinReasons(t *testing.T, dataDir string, digests []string) [][]string {
	t.Helper()
	s, err := storage.Open(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out := make([][]string, len(digests))
	for i, d := range digests {
		if out[i], err = s.PinReasons(d); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// pruneAll runs `cache prune --older-than 0s`: everything unpinned goes.
func pruneAll(t *testing.T, args ...string) admin.PruneResult {
	t.Helper()
	return pruneOlder(t, "0s", args...)
}

func pruneOlder(t *testing.T, age string, args ...string) admin.PruneResult {
	t.Helper()
	out, err := runCLI(t, append([]string{"cache", "prune", "--json", "--older-than", age}, args...)...)
	if err != nil {
		t.Fatalf("cache prune %v: %v", args, err)
	}
	var res admin.PruneResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("cache prune --json: %v\n%s", err, out)
	}
	return res
}

func TestCachePinKeepsImageThroughPrune(t *testing.T) {
	f, tok := tokenFixture(t)
	digests, _ := pullImage(t, f.node, f)
	adminURL := f.node.adminURL()
	auth := []string{"--admin", adminURL, "--token-file", tok}

	if _, err := runCLI(t, "cache", "pin", "--admin", adminURL, alpineRef); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("pin without a token: got %v, want a 401 error", err)
	}
	for _, c := range []struct{ ref, want string }{
		{"not a ref", "400"},
		{"docker.io/library/alpine:missing", "404"},
	} {
		if _, err := runCLI(t, append([]string{"cache", "pin"}, append(auth, c.ref)...)...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("pin %q: got %v, want a %s error", c.ref, err, c.want)
		}
	}
	if out, err := runCLI(t, append([]string{"cache", "pin"}, append(auth, alpineRef)...)...); err != nil || !strings.Contains(out, alpineRef) {
		t.Fatalf("pin: %q, %v", out, err)
	}
	if res := pruneAll(t, auth...); len(res.Removed) != 0 {
		t.Errorf("prune of a pinned image: removed %v, want nothing", res.Removed)
	}
	if want := fmt.Sprintf("cairn_storage_pinned_blobs %d", len(digests)); !strings.Contains(metricsOf(t, f.node), want) {
		t.Errorf("/metrics lacks %s", want)
	}

	f.node.stop(t)
	for i, reasons := range pinReasons(t, f.dataDir, digests) {
		if !slices.Contains(reasons, admin.PinReason) {
			t.Errorf("pin reasons of %s after cache pin: got %v, want %q among them", digests[i], reasons, admin.PinReason)
		}
	}
	f.node = startNode(t, testConfig(t, f.dataDir, f.docker.host(), f.ghcr.host(), "admin: {token_file: '"+tok+"'}"))
	auth[1] = f.node.adminURL()

	if _, err := runCLI(t, append([]string{"cache", "unpin"}, append(auth, alpineRef)...)...); err != nil {
		t.Fatalf("unpin: %v", err)
	}
	res := pruneAll(t, auth...)
	slices.Sort(res.Removed)
	if want := slices.Sorted(slices.Values(digests)); !slices.Equal(res.Removed, want) {
		t.Errorf("prune after unpin: removed %v, want the image %v", res.Removed, want)
	}
	before := upstreamBlobGETs(f, digests[1:])
	pullImage(t, f.node, f)
	if got, want := upstreamBlobGETs(f, digests[1:]), before+len(digests)-1; got != want {
		t.Errorf("upstream blob GETs after prune and a new pull: got %d, want %d", got, want)
	}
}

func TestCachePinNeedsRunningNode(t *testing.T) {
	f := newFixture(t)
	f.node.stop(t)
	_, err := runCLI(t, "cache", "pin", "--admin", "http://127.0.0.1:1", "--data-dir", f.dataDir, alpineRef)
	if err == nil || !strings.Contains(err.Error(), "pinning needs the running node") {
		t.Errorf("pin without a node: got %v, want an error saying it needs the running node", err)
	}
}

func TestCachePruneOffline(t *testing.T) {
	f := newFixture(t)
	d := pullLayer(t, f)
	f.node.stop(t)
	res := pruneAll(t, "--admin", "http://127.0.0.1:1", "--data-dir", f.dataDir)
	if !slices.Contains(res.Removed, d) || res.Bytes <= 0 {
		t.Fatalf("offline prune: got %+v, want %s removed", res, d)
	}
	f.node = startNode(t, testConfig(t, f.dataDir, f.docker.host(), f.ghcr.host()))
	pullLayer(t, f)
	if n := f.docker.count("GET", "/blobs/"+d); n != 2 {
		t.Errorf("upstream GETs of %s after prune and a second pull: got %d, want 2", d, n)
	}
}

func TestCachePruneKeepsRecent(t *testing.T) {
	f, tok := tokenFixture(t)
	d := pullLayer(t, f)
	res := pruneOlder(t, "1d", "--admin", f.node.adminURL(), "--token-file", tok)
	if len(res.Removed) != 0 {
		t.Errorf("prune --older-than 1d right after a pull: removed %v, want nothing (%s is recent)", res.Removed, d)
	}
}

func TestCacheDu(t *testing.T) {
	f := newFixture(t)
	_, size := pullImage(t, f.node, f)
	st := statsJSON(t, "--admin", f.node.adminURL())
	out, err := runCLI(t, "cache", "du", "--admin", f.node.adminURL())
	for _, want := range []string{humanBytes(st.UsedBytes), "unlimited", "docker.io", humanBytes(size), "counted in each"} {
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("cache du: got %q, %v, want it to contain %q", out, err, want)
		}
	}
}

// verify through the running node re-hashes every blob: a file changed on
// disk is quarantined, its metadata dropped, and counted.
func TestCacheVerifyQuarantines(t *testing.T) {
	f, tok := tokenFixture(t)
	d := pullLayer(t, f)
	hex := strings.TrimPrefix(d, "sha256:")
	path := filepath.Join(f.dataDir, "blobs", "sha256", hex[:2], hex)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	file, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := file.WriteAt([]byte("XX"), 0); err != nil {
		t.Fatal(err)
	}
	file.Close()
	out, err := runCLI(t, "cache", "verify", "--json", "--admin", f.node.adminURL(), "--token-file", tok)
	if err != nil {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	if !strings.Contains(out, d) {
		t.Errorf("verify did not report %s quarantined:\n%s", d, out)
	}
	if !strings.Contains(metricsOf(t, f.node), "cairn_storage_verify_failures_total 1") {
		t.Error("/metrics lacks cairn_storage_verify_failures_total 1")
	}
	if _, err := os.Stat(filepath.Join(f.dataDir, "quarantine", "sha256-"+hex)); err != nil {
		t.Errorf("quarantined file: %v", err)
	}
}
