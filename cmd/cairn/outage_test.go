package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/cairn-mirror/cairn/internal/config"
)

// outageConfig: every tag is due for revalidation at once (tag_ttl 1ns), so
// each request asks the upstream; the breaker is set out of reach so that
// this test sees the upstream itself (the breaker has its own test, with
// an injected clock, in package cache).
func outageConfig(t *testing.T, f *fixture) *config.Config {
	t.Helper()
	return testConfig(t, f.dataDir, f.docker.host(), f.ghcr.host(), "cache: {tag_ttl: 1ns, breaker_failures: 1000}")
}

func TestUpstreamOutageAndRecovery(t *testing.T) {
	f := newFixture(t)
	f.docker.mu.Lock()
	f.docker.remaining = "42"
	f.docker.mu.Unlock()
	f.node.stop(t)
	n := startNode(t, outageConfig(t, f))
	layers, _ := f.img.Layers()
	blob := "/v2/library/alpine/blobs/" + mustDigest(t, layers[0])
	want := layerBytes(t, layers[0])
	for _, p := range []string{"/v2/library/alpine/manifests/3.19", blob} {
		if resp, _ := get(t, "GET", n.url(p)); resp.StatusCode != 200 {
			t.Fatalf("warm-up %s: %d", p, resp.StatusCode)
		}
	}
	_, metrics := get(t, "GET", "http://"+n.s.adminLn.Addr().String()+"/metrics")
	if !strings.Contains(string(metrics), `cairn_upstream_ratelimit_remaining{namespace="docker.io"} 42`) {
		t.Errorf("/metrics lacks the rate-limit gauge from the upstream's headers")
	}

	f.docker.setDown(true)
	assertServesOffline(t, n, blob, want)
	if !strings.Contains(metricsOf(t, n), `cairn_cache_stale_served_total{namespace="docker.io"}`) {
		t.Errorf("stale answers were not counted")
	}

	n.stop(t) // restart while the upstream is still down
	n = startNode(t, outageConfig(t, f))
	assertServesOffline(t, n, blob, want)

	f.docker.setDown(false)
	heads := f.docker.count("HEAD", "/manifests/3.19")
	if resp, _ := get(t, "GET", n.url("/v2/library/alpine/manifests/3.19")); resp.StatusCode != 200 {
		t.Fatalf("upstream back: %d", resp.StatusCode)
	}
	if f.docker.count("HEAD", "/manifests/3.19") != heads+1 {
		t.Errorf("upstream back: revalidation did not resume (HEADs %d -> %d)", heads, f.docker.count("HEAD", "/manifests/3.19"))
	}
}

// assertServesOffline: with the upstream down, cached content serves, the
// tag list comes from cairn's records, and what was never cached gets 503.
func assertServesOffline(t *testing.T, n *node, blob string, want []byte) {
	t.Helper()
	if resp, _ := get(t, "GET", n.url("/v2/library/alpine/manifests/3.19")); resp.StatusCode != 200 {
		t.Errorf("cached tag, upstream down: status %d, want 200 (stale)", resp.StatusCode)
	}
	if resp, body := get(t, "GET", n.url(blob)); resp.StatusCode != 200 || !bytes.Equal(body, want) {
		t.Errorf("cached blob, upstream down: status %d", resp.StatusCode)
	}
	resp, body := get(t, "GET", n.url("/v2/library/alpine/tags/list"))
	var tl struct {
		Tags []string `json:"tags"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &tl) != nil || strings.Join(tl.Tags, ",") != "3.19" {
		t.Errorf("tags/list, upstream down: status %d, body %s; want the cached tag", resp.StatusCode, body)
	}
	resp, body = get(t, "GET", n.url("/v2/library/alpine/manifests/uncached"))
	if resp.StatusCode != 503 {
		t.Errorf("uncached tag, upstream down: status %d, want 503", resp.StatusCode)
	}
	assertOCIError(t, "uncached, upstream down", body, "UNAVAILABLE")
}

func metricsOf(t *testing.T, n *node) string {
	t.Helper()
	_, body := get(t, "GET", "http://"+n.s.adminLn.Addr().String()+"/metrics")
	return string(body)
}
