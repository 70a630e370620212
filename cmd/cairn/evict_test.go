package main

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"
)

// usedBytes reads cairn_storage_used_bytes from /metrics.
func usedBytes(t *testing.T, n *node) int64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^cairn_storage_used_bytes (\S+)$`).FindStringSubmatch(metricsOf(t, n))
	if m == nil {
		t.Fatal("/metrics has no cairn_storage_used_bytes")
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return int64(v)
}

// With a max_size of a few blobs, clients pull many at once, twice over:
// every pull is whole, and the evictor brings usage back under the cap.
func TestMaxSizeUnderLoad(t *testing.T) {
	const layer = 64 << 10
	f := newFixture(t)
	img := randomImage(t, layer, 12)
	f.docker.push(t, "library/many", "v1", img)
	f.node.stop(t)
	budget := 4 * layer
	n := startNode(t, testConfig(t, f.dataDir, f.docker.host(), f.ghcr.host(),
		fmt.Sprintf("cache: {max_size: %d, evict_high: 0.9, evict_low: 0.5}", budget)))
	layers, _ := img.Layers()
	for round := range 2 {
		var wg sync.WaitGroup
		for _, l := range layers {
			wg.Go(func() {
				path := "/v2/library/many/blobs/" + mustDigest(t, l)
				if body, err := readBlob(n.url(path)); err != nil || !bytes.Equal(body, layerBytes(t, l)) {
					t.Errorf("round %d: %s: %v", round, path, err)
				}
			})
		}
		wg.Wait()
	}
	if !regexpMatch(`cairn_storage_capacity_bytes 262144`, metricsOf(t, n)) {
		t.Errorf("/metrics lacks the capacity gauge")
	}
	// The evictor runs in the background.
	waitUntil(t, 10*time.Second, fmt.Sprintf("usage under the budget %d (+ one blob)", budget), func() bool {
		return usedBytes(t, n) <= int64(budget+layer)
	})
	if !regexpMatch(`cairn_storage_evictions_total\{reason="size"\} [1-9]`, metricsOf(t, n)) {
		t.Errorf("no evictions counted")
	}
}

func regexpMatch(pattern, s string) bool { return regexp.MustCompile(pattern).MatchString(s) }
