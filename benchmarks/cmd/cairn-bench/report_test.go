package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want stats
	}{
		{[]float64{3}, stats{3, 3, 3}},
		{[]float64{5, 1, 3}, stats{3, 1, 5}},
		{[]float64{4, 1, 3, 2}, stats{2.5, 1, 4}},
	} {
		if got := summarize(c.in); got != c.want {
			t.Errorf("summarize(%v) = %+v, want %+v", c.in, got, c.want)
		}
	}
	if s := summarize(nil); !math.IsNaN(s.Median) {
		t.Errorf("summarize(nil) = %+v, want NaN", s)
	}
}

func TestTargets(t *testing.T) {
	rep := newReport()
	for i, v := range []float64{100, 110, 90} {
		rep.add("s", "c", "tput", "MB/s", true, target{kind: ratioMin, value: 2}, nameCairn, v)
		rep.add("s", "c", "tput", "MB/s", true, target{kind: ratioMin, value: 2}, nameRef, []float64{50, 60, 40}[i])
		rep.add("s", "c", "lag", "ms", false, target{kind: cairnMax, value: 100}, nameCairn, []float64{10, 120, 30}[i])
		rep.add("s", "c", "gets", "count", false, target{kind: cairnEq, value: 1, exact: true}, nameCairn, 1)
		rep.addCairn("s", "c", "share", "ratio", true, target{kind: cairnMinV, value: 0.8}, []float64{0.9, 0.85, 0.79}[i])
	}
	f := rep.index["s\x00c\x00tput"]
	if r := f.ratio(); r != 2 {
		t.Errorf("ratio = %v, want 2 (100 / 50)", r)
	}
	if !f.met() {
		t.Error("a ratio of exactly 2 misses >= 2x")
	}
	if rep.index["s\x00c\x00lag"].met() {
		t.Error("one run of 120 ms meets cairn <= 100")
	}
	if rep.index["s\x00c\x00share"].met() {
		t.Error("one run of 0.79 meets cairn >= 0.8")
	}
	if !rep.index["s\x00c\x00gets"].met() {
		t.Error("1, 1, 1 misses cairn = 1")
	}
	if m := rep.misses(false); len(m) != 0 {
		t.Errorf("exact misses %q, want none", m)
	}
	if m := rep.misses(true); len(m) != 2 {
		t.Errorf("all misses %q, want the lag and the share", m)
	}
	rep.add("s", "c", "gets", "count", false, target{kind: cairnEq, value: 1, exact: true}, nameCairn, 2)
	if m := rep.misses(false); len(m) != 1 || !strings.Contains(m[0], "gets") {
		t.Errorf("exact misses %q, want the upstream GETs", m)
	}

	md := rep.markdown()
	if !strings.Contains(md, "| s | c | tput (MB/s, higher is better) | 2.00x | 100 (90.0-110) | 50.0 (40.0-60.0) | >= 2x | yes |") {
		t.Errorf("markdown row missing:\n%s", md)
	}
	var out struct {
		Figures []struct {
			Figure string   `json:"figure"`
			Ratio  *float64 `json:"ratio"`
			Met    *bool    `json:"met"`
		} `json:"figures"`
	}
	if err := json.Unmarshal(rep.json(), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Figures) != 4 || out.Figures[0].Ratio == nil || *out.Figures[0].Ratio != 2 || out.Figures[3].Ratio != nil {
		t.Errorf("json figures %+v", out.Figures)
	}
}

func TestRangeStart(t *testing.T) {
	for in, want := range map[string]int64{"": 0, "bytes 0-9/10": 0, "bytes 1048576-2097151/4194304": 1 << 20, "bytes x-1/2": 0, "bytes": 0} {
		if got := rangeStart(in); got != want {
			t.Errorf("rangeStart(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestUpstreamGETPassed(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	// A GET from offset 1 MiB that has read 3 MiB.
	g := &upstreamGET{start: mib, first: at(0), marks: []time.Time{at(10), at(20), at(30)}, read: 3 * mib}
	for _, c := range []struct {
		off  int64
		want time.Time
	}{
		{0, time.Time{}},           // before its range
		{mib, at(0)},               // its first byte
		{mib + 100, at(0)},         // inside the first MiB: rounded down
		{2 * mib, at(10)},          // one MiB in
		{4*mib - 1, at(20)},        // inside the third MiB: rounded down
		{4 * mib, at(30)},          // three MiB in
		{5 * mib, time.Time{}},     // not reached
		{100 * mib, time.Time{}},   // far off
		{mib + 3*mib, g.marks[2]},  // the last mark
		{mib + 2*mib, g.marks[1]},  // the middle one
		{mib + mib/2, g.first},     // half a MiB in
		{mib + 3*mib - 1, at(20)},  // a byte short of 3 MiB
		{mib + 2*mib + 1, at(20)},  // a byte past 2 MiB
		{mib + 1*mib + 1, at(10)},  // a byte past 1 MiB
		{mib + 1*mib - 1, g.first}, // a byte short of 1 MiB
	} {
		if got := g.passed(c.off); !got.Equal(c.want) {
			t.Errorf("passed(%d) = %v, want %v", c.off, got, c.want)
		}
	}
}

func TestHerdLags(t *testing.T) {
	start := time.Unix(2000, 0)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	gets := []*upstreamGET{{first: at(50), marks: []time.Time{at(60), at(70), at(80), at(90)}, read: 4 * mib}}
	clients := []*herdClient{
		{n: -1, first: at(55)},
		{n: -1, first: at(150)},               // 100 ms behind the upstream's first byte
		{off: 3 * mib, n: mib, first: at(85)}, // 5 ms after the fill passed 3 MiB (at 80)
		{off: 9 * mib, n: mib, first: at(99)}, // the fill never got there: not counted
	}
	h := herdLags(clients, gets, nil, start)
	if h.full != 100 || h.ranged != 5 || h.fullRead != 100 || h.rangedRead != 5 || h.unknown != 0 {
		t.Errorf("no GET time, no fill: %+v, want lags 100 and 5, all by read time", h)
	}
	if len(h.ttfb) != 4 || h.ttfb[0] != 55 || h.ttfb[3] != 150 {
		t.Errorf("ttfb %v, want sorted 55 ... 150", h.ttfb)
	}
	// With the server's own fill watched, ranged readers are measured
	// against it, full readers still against the upstream's first byte.
	filled := func(off int64) time.Time { return at(int(off/mib)*10 + 45) }
	h = herdLags(clients, gets, filled, start)
	if h.full != 100 || h.ranged != 10 {
		t.Errorf("with the fill watched: lags full %v ranged %v, want 100 and 10 (85 - 75: the fill, not the upstream)", h.full, h.ranged)
	}
	// Known arrivals count, from the tap's GET for full readers and from
	// the fill for ranged ones; the read times stay as info.
	gets[0].asked = at(40)
	clients[1].arrived = at(60)
	clients[2].arrived = at(78)
	h = herdLags(clients, gets, filled, start)
	if h.full != 20 || h.ranged != 3 || h.fullRead != 100 || h.rangedRead != 10 || h.unknown != 2 {
		t.Errorf("with arrivals: %+v, want lags 20 (60 - 40) and 3 (78 - 75), by read 100 and 10, 2 unknown", h)
	}
	// The reference's ranged readers lag behind the upstream passing their
	// offset, a read time: their lag is by read time, whatever arrived.
	h = herdLags(clients, gets, nil, start)
	if h.ranged != 5 || h.rangedRead != 5 {
		t.Errorf("without a fill: ranged lags %v and %v, want 5 (85 - 80, both reads)", h.ranged, h.rangedRead)
	}
}

func TestFillWatch(t *testing.T) {
	dir := t.TempDir()
	digest := "sha256:" + strings.Repeat("ab", 32)
	w := watchFill(dir, digest)
	f, err := os.Create(filepath.Join(dir, "sha256-abababababababab-123"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	other, _ := os.Create(filepath.Join(dir, "sha256-cdcdcdcdcdcdcdcd-1"))
	other.Write(make([]byte, 5*mib)) // another blob's fill: ignored
	other.Close()
	before := time.Now()
	if _, err := f.Write(make([]byte, 2*mib)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	passed := w.stop()
	if got := passed(mib); got.IsZero() || got.After(time.Now()) {
		t.Errorf("passed(1 MiB) = %v, want a time the watch saw", got)
	} else if got.After(before.Add(50 * time.Millisecond)) {
		t.Errorf("passed(1 MiB) = %v, long after the write at %v", got, before)
	}
	if got := passed(3 * mib); !got.IsZero() {
		t.Errorf("passed(3 MiB) = %v, want zero: the file never got there (the other blob's did)", got)
	}
}

func TestParseScenarios(t *testing.T) {
	if got, err := parseScenarios("warm, herd"); err != nil || len(got) != 2 {
		t.Errorf("parseScenarios = %v, %v", got, err)
	}
	for _, bad := range []string{"", "warm,nope"} {
		if _, err := parseScenarios(bad); err == nil {
			t.Errorf("parseScenarios(%q): no error", bad)
		}
	}
}
