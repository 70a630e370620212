package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
)

// The scenarios, in the order they run.
var allScenarios = []string{"warm", "manifest", "herd", "cold", "containerd"}

// options sizes a run.
type options struct {
	smoke     bool
	runs      int
	scenarios []string

	seedSizes []int64 // single-layer images seeded at start

	warmSizes    []int64 // scenario 1
	warmClients  []int
	warmDuration time.Duration // per cell and server: a bounded loop

	manifestClients  []int // scenario 2
	manifestDuration time.Duration

	herdSize    int64 // scenario 3
	herdClients int

	coldSize int64 // scenario 4

	imageLayer  int64 // scenario 5: each layer of each platform's image
	imageLayers int

	clientTimeout time.Duration // bound on any one request
}

func defaultOptions() options {
	return options{
		runs:             3,
		seedSizes:        []int64{1 * mib, 10 * mib, 100 * mib, 1 * gib},
		warmSizes:        []int64{1 * mib, 100 * mib, 1 * gib},
		warmClients:      []int{1, 4, 16},
		warmDuration:     2 * time.Second,
		manifestClients:  []int{1, 16, 64},
		manifestDuration: 2 * time.Second,
		herdSize:         256 * mib,
		herdClients:      64,
		coldSize:         1 * gib,
		imageLayer:       8 * mib,
		imageLayers:      3,
		clientTimeout:    3 * time.Minute,
	}
}

// smokeOptions keeps every scenario and code path but makes it small: CI
// runs it in make test to keep the harness working, not to judge speed.
func smokeOptions() options {
	return options{
		smoke:            true,
		runs:             1,
		seedSizes:        []int64{1 * mib, 4 * mib},
		warmSizes:        []int64{1 * mib, 4 * mib},
		warmClients:      []int{1, 4},
		warmDuration:     200 * time.Millisecond,
		manifestClients:  []int{1, 16},
		manifestDuration: 200 * time.Millisecond,
		herdSize:         8 * mib,
		herdClients:      16,
		coldSize:         16 * mib,
		imageLayer:       256 * kib,
		imageLayers:      2,
		clientTimeout:    time.Minute,
	}
}

func (o options) has(scenario string) bool { return slices.Contains(o.scenarios, scenario) }

func parseScenarios(s string) ([]string, error) {
	var out []string
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if !slices.Contains(allScenarios, name) {
			return nil, fmt.Errorf("--scenarios: unknown scenario %q (known: %s)", name, strings.Join(allScenarios, ", "))
		}
		out = append(out, name)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--scenarios: none named")
	}
	return out, nil
}

// sizeName is 1MiB, 100MiB, 1GiB.
func sizeName(n int64) string {
	switch {
	case n >= gib && n%gib == 0:
		return fmt.Sprintf("%dGiB", n/gib)
	case n >= mib && n%mib == 0:
		return fmt.Sprintf("%dMiB", n/mib)
	case n >= kib && n%kib == 0:
		return fmt.Sprintf("%dKiB", n/kib)
	}
	return fmt.Sprintf("%dB", n)
}
