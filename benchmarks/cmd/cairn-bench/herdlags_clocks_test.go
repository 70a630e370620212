package main

import (
	"testing"
	"time"
)

// A client's arrival time (kernel) must never be measured against a read
// time at the tap, which trails its own arrival: the lag would come out
// smaller than the truth, even negative. Here the tap
// read the upstream's first byte 30 ms late (at 50; it arrived at 20) and
// its 3 MiB mark late too (at 80): the full reader whose first byte
// reached it at 45 and was read at 70 truly lagged 25 ms, the ranged one
// (arrived 75, read 85) at least 5 ms.
func TestHerdLagsNeverMixClocks(t *testing.T) {
	start := time.Unix(2000, 0)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	gets := []*upstreamGET{{first: at(50), marks: []time.Time{at(60), at(70), at(80), at(90)}, read: 4 * mib}}
	clients := []*herdClient{
		{n: -1, first: at(70), arrived: at(45)},
		{off: 3 * mib, n: mib, first: at(85), arrived: at(75)},
	}
	h := herdLags(clients, gets, nil, start)
	// On one clock (read vs read) the lags are 20 and 5; arrival vs read
	// gives -5 and -5, clamped to 0: the reference server looks perfect.
	if h.full < 20 || h.ranged < 5 {
		t.Errorf("lags full %v ranged %v: the client's arrival was measured against the tap's read time; want at least the read-vs-read 20 and 5", h.full, h.ranged)
	}
}
