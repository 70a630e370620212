package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cairn-mirror/cairn/internal/procs"
)

// runAll seeds the images and runs the chosen scenarios. The report holds
// whatever was measured before an error.
func (e *env) runAll(ctx context.Context) (*report, error) {
	rep := newReport()
	rep.Date, rep.Runs, rep.Smoke, rep.CPUs, rep.GoVer = time.Now(), e.opts.runs, e.opts.smoke, runtime.NumCPU(), runtime.Version()
	rep.Commit = gitCommit(ctx)
	rep.Registry = registryVersion(ctx, e.registryBin)

	start := time.Now()
	images := map[int64]image{}
	// Only the warm and manifest scenarios read the seeded images.
	seedSizes := e.opts.seedSizes
	if !e.opts.has("warm") && !e.opts.has("manifest") {
		seedSizes = nil
	}
	for _, size := range seedSizes {
		img, err := e.seedImage(ctx, "library/img-"+strings.ToLower(sizeName(size)), "v1", size)
		if err != nil {
			return nil, fmt.Errorf("seeding: %w", err)
		}
		images[size] = img
	}
	logf("seeded %d images in %s", len(images), time.Since(start).Round(time.Millisecond))

	steps := []struct {
		name string
		run  func(context.Context, *report, map[int64]image) error
	}{
		{"warm", e.warmBlobs},
		{"manifest", e.manifests},
		{"herd", e.herd},
		{"cold", e.coldFill},
		{"containerd", e.containerdPulls},
	}
	for _, s := range steps {
		if !e.opts.has(s.name) {
			continue
		}
		t0 := time.Now()
		logf("scenario %s", s.name)
		if err := s.run(ctx, rep, images); err != nil {
			return rep, fmt.Errorf("scenario %s: %w", s.name, err)
		}
		logf("scenario %s done in %s", s.name, time.Since(t0).Round(time.Millisecond))
	}
	logf("all scenarios in %s", time.Since(start).Round(time.Second))
	return rep, nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "cairn-bench: "+format+"\n", args...)
}

func gitCommit(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func registryVersion(ctx context.Context, bin string) string {
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return bin
	}
	f := strings.Fields(string(out))
	if len(f) >= 3 {
		return "distribution " + strings.TrimPrefix(f[2], "v")
	}
	return strings.TrimSpace(string(out))
}

// measure tracks one server's CPU time and peak RSS over a stretch of work.
type measure struct {
	pid int
	cpu time.Duration
}

func startMeasure(s *server) (measure, error) {
	pid := s.proc.Pid()
	if err := procs.ResetPeak(pid); err != nil {
		return measure{}, fmt.Errorf("%s: reset peak RSS: %w", s.name, err)
	}
	cpu, err := procs.CPUTime(pid)
	return measure{pid: pid, cpu: cpu}, err
}

// cpuSince is the CPU time the server used since the mark (or the last
// cpuSince), and moves the mark.
func (m *measure) cpuSince() (time.Duration, error) {
	cpu, err := procs.CPUTime(m.pid)
	d := cpu - m.cpu
	m.cpu = cpu
	return d, err
}

// peakMiB is the peak RSS since startMeasure.
func (m *measure) peakMiB() (float64, error) {
	_, peak, err := procs.Memory(m.pid)
	return float64(peak) / mib, err
}

func addPeak(rep *report, scenario string, s *server, m *measure) error {
	peak, err := m.peakMiB()
	if err != nil {
		return err
	}
	rep.add(scenario, "all cases", "peak RSS", "MiB", false, target{kind: cairnMax, value: 256}, s.name, peak)
	return nil
}

func blobURL(s *server, repo, digest string) string {
	return fmt.Sprintf("%s/v2/%s/blobs/%s", s.url(), repo, digest)
}

// prefetch GETs each blob through each server until it is cached there.
func (e *env) prefetch(ctx context.Context, hc *http.Client, repo, digest string, size int64) error {
	for _, s := range []*server{e.cairn, e.ref} {
		// The reference commits its copy in the background after the
		// first response: a second GET finds it local.
		for range 2 {
			if _, err := timedGET(ctx, hc, blobURL(s, repo, digest), nil, size); err != nil {
				return fmt.Errorf("%s: warming: %w", s.name, err)
			}
		}
	}
	return nil
}

// Scenario 1: warm blobs at several sizes and concurrencies.
func (e *env) warmBlobs(ctx context.Context, rep *report, images map[int64]image) error {
	hc := newLoadClient()
	defer hc.CloseIdleConnections()
	for _, size := range e.opts.warmSizes {
		img, ok := images[size]
		if !ok {
			return fmt.Errorf("no image of %s seeded", sizeName(size))
		}
		if err := e.prefetch(ctx, hc, img.repo, img.layer, size); err != nil {
			return err
		}
	}
	const sc = "1 warm blob"
	for run := range e.opts.runs {
		for _, s := range e.servers(run) {
			m, err := startMeasure(s)
			if err != nil {
				return err
			}
			for _, size := range e.opts.warmSizes {
				img := images[size]
				for _, clients := range e.opts.warmClients {
					if _, err := m.cpuSince(); err != nil {
						return err
					}
					r, err := loop(ctx, hc, blobURL(s, img.repo, img.layer), nil, clients, e.opts.warmDuration, size, false)
					if err != nil {
						return fmt.Errorf("%s: %w", s.name, err)
					}
					cpu, err := m.cpuSince()
					if err != nil {
						return err
					}
					cse := fmt.Sprintf("%s x%d", sizeName(size), clients)
					rep.add(sc, cse, "throughput", "MB/s", true, target{kind: ratioMin, value: 1}, s.name, r.mbps())
					rep.add(sc, cse, "server CPU", "CPU-s/GB", false, target{}, s.name, cpu.Seconds()/(float64(r.bytes)/1e9))
					if size == mib && clients == 16 {
						rep.add(sc, cse, "requests", "req/s", true, target{kind: ratioMin, value: 1.5}, s.name, r.rps())
					}
				}
			}
			if err := addPeak(rep, sc, s, &m); err != nil {
				return err
			}
		}
	}
	return nil
}

// Scenario 2: manifest hits by tag (within cairn's tag_ttl) and by digest.
func (e *env) manifests(ctx context.Context, rep *report, images map[int64]image) error {
	img, ok := images[10*mib]
	if !ok {
		img = images[e.opts.seedSizes[0]]
	}
	hc := newLoadClient()
	defer hc.CloseIdleConnections()
	accept := http.Header{"Accept": {manifestAccept}}
	refs := []struct{ name, ref string }{{"by tag", img.tag}, {"by digest", img.manifest}}
	for _, s := range []*server{e.cairn, e.ref} {
		for _, r := range refs {
			url := fmt.Sprintf("%s/v2/%s/manifests/%s", s.url(), img.repo, r.ref)
			if _, err := timedGET(ctx, hc, url, accept, -1); err != nil {
				return fmt.Errorf("%s: warming %s: %w", s.name, url, err)
			}
		}
	}
	const sc = "2 manifest"
	for run := range e.opts.runs {
		for _, s := range e.servers(run) {
			m, err := startMeasure(s)
			if err != nil {
				return err
			}
			for _, r := range refs {
				url := fmt.Sprintf("%s/v2/%s/manifests/%s", s.url(), img.repo, r.ref)
				for _, clients := range e.opts.manifestClients {
					up0 := e.tap.count("GET manifest") + e.tap.count("HEAD manifest")
					res, err := loop(ctx, hc, url, accept, clients, e.opts.manifestDuration, -1, true)
					if err != nil {
						return fmt.Errorf("%s: %w", s.name, err)
					}
					up := e.tap.count("GET manifest") + e.tap.count("HEAD manifest") - up0
					cse := fmt.Sprintf("%s x%d", r.name, clients)
					want := 2.0
					if r.name == "by tag" {
						want = 10
					}
					rep.add(sc, cse, "requests", "req/s", true, target{kind: ratioMin, value: want}, s.name, res.rps())
					rep.add(sc, cse, "p50", "ms", false, target{}, s.name, res.quantileMS(0.50))
					p99 := target{}
					if clients == 16 {
						p99 = target{kind: cairnMax, value: 5}
					}
					rep.add(sc, cse, "p99", "ms", false, p99, s.name, res.quantileMS(0.99))
					rep.add(sc, cse, "upstream requests per 1000", "count", false, target{}, s.name, 1000*float64(up)/float64(max(res.completed, 1)))
				}
			}
			if err := addPeak(rep, sc, s, &m); err != nil {
				return err
			}
		}
	}
	return nil
}

// herdClient is one client of the thundering herd.
type herdClient struct {
	off, n  int64     // the window asked for; n < 0: the whole blob
	first   time.Time // when this client read its window's first byte
	arrived time.Time // when that byte reached this host (zero: unknown)
	read    int64
	err     error
}

// Scenario 3: a cold blob asked for by many clients at once, a quarter of
// them for a 1 MiB window further into it.
func (e *env) herd(ctx context.Context, rep *report, _ map[int64]image) error {
	const sc, repo = "3 thundering herd", "library/herd"
	n := e.opts.herdClients
	cse := fmt.Sprintf("%s cold, %d clients", sizeName(e.opts.herdSize), n)
	// Run -1 warms both servers up on a smaller blob (a fresh process's
	// first herd grows its heap and pools) and is not recorded.
	for run := -1; run < e.opts.runs; run++ {
		size := e.opts.herdSize
		add := rep.add
		if run < 0 {
			size = min(size, 16*mib)
			add = func(string, string, string, string, bool, target, string, float64) {}
		}
		for _, s := range e.servers(run) {
			digest, err := e.seedBlob(ctx, repo, size)
			if err != nil {
				return err
			}
			m, err := startMeasure(s)
			if err != nil {
				return err
			}
			clients := make([]*herdClient, n)
			ranged := n / 4
			for i := range clients {
				clients[i] = &herdClient{n: -1}
				if i%4 == 3 {
					// Offsets spread over the blob, on MiB boundaries.
					k := int64(i/4 + 1)
					clients[i].off = (size / int64(ranged+1) * k) / mib * mib
					clients[i].n = mib
				}
			}
			syscall.Sync() // the seeding's writes must not slow the herd
			hc := newArrivalClient()
			// Every client connected first: the figures are the fan-out's,
			// not 64 handshakes racing the first byte.
			if err := warmConns(ctx, hc, s.url()+"/v2/", n); err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			var watch *fillWatch
			if s == e.cairn {
				watch = watchFill(filepath.Join(s.dataDir, "tmp"), digest)
			}
			start := time.Now()
			var wg sync.WaitGroup
			for _, c := range clients {
				wg.Go(func() { c.fetch(ctx, hc, blobURL(s, repo, digest), size, e.opts.clientTimeout) })
			}
			wg.Wait()
			total := time.Since(start)
			hc.CloseIdleConnections()
			gets := e.tap.blobGETs(digest)
			var filled func(int64) time.Time
			if watch != nil {
				filled = watch.stop()
			}
			for _, c := range clients {
				if c.err != nil {
					return fmt.Errorf("%s: herd client at %d: %w", s.name, c.off, c.err)
				}
			}
			h := herdLags(clients, gets, filled, start)
			if h.unknown > 0 && run >= 0 {
				rep.Notes = append(rep.Notes, fmt.Sprintf("herd run %d, %s: for %d of %d clients the arrival time was unknown; their read time counts", run+1, s.name, h.unknown, n))
			}
			add(sc, cse, "upstream GETs", "count", false, target{kind: cairnEq, value: 1, exact: true}, s.name, float64(len(gets)))
			add(sc, cse, "time to first byte, median client", "ms", false, target{}, s.name, h.ttfb[len(h.ttfb)/2])
			add(sc, cse, "time to first byte, slowest client", "ms", false, target{}, s.name, h.ttfb[len(h.ttfb)-1])
			add(sc, cse, "full readers: first byte at the client after the upstream GET, worst", "ms", false, target{kind: cairnMax, value: 100}, s.name, h.full)
			add(sc, cse, "ranged readers: first byte at the client after the fill passed the offset, worst", "ms", false, target{kind: cairnMax, value: 100}, s.name, h.ranged)
			add(sc, cse, "full readers: first byte read by the client after the tap read upstream's, worst", "ms", false, target{}, s.name, h.fullRead)
			add(sc, cse, "ranged readers: first byte read by the client after the fill passed the offset, worst", "ms", false, target{}, s.name, h.rangedRead)
			add(sc, cse, "total time", "s", false, target{}, s.name, total.Seconds())
			if run >= 0 {
				if err := addPeak(rep, sc, s, &m); err != nil {
					return err
				}
			}
			if err := e.settle(ctx, s, digest); err != nil {
				return err
			}
			if err := e.drop(ctx, repo, digest); err != nil {
				return err
			}
		}
	}
	return nil
}

// herdLags are the worst lags of full readers behind the upstream's first
// byte and of ranged readers behind the fill passing their offset, in ms,
// and every client's time to first byte, sorted. filled tells when the
// server's own fill passed an offset; without it (the reference, which
// fills nothing its clients wait for) the upstream GETs passing it stand
// in.
//
// A client's byte counts when it reached the client's socket (arrival.go:
// never earlier than the truth), measured from a time never later than
// the truth: the tap sending the GET upstream for full readers, the poll
// before the fill was seen past the offset for ranged ones. Lags by the
// client goroutine's read, against the tap's read of the first byte, are
// kept as info. Where the reference is itself a read time (the upstream
// passing a later offset, for the reference's ranged readers), both use
// the client's read.
func herdLags(clients []*herdClient, gets []*upstreamGET, filled func(int64) time.Time, start time.Time) (h herdFigures) {
	upFirst := func(off int64) time.Time {
		var t time.Time
		for _, g := range gets {
			if p := g.passed(off); !p.IsZero() && (t.IsZero() || p.Before(t)) {
				t = p
			}
		}
		return t
	}
	var asked time.Time // the first GET from offset 0
	for _, g := range gets {
		if g.start == 0 && (asked.IsZero() || g.asked.Before(asked)) {
			asked = g.asked
		}
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	for _, c := range clients {
		h.ttfb = append(h.ttfb, ms(c.first.Sub(start)))
		readRef, ref := upFirst(c.off), time.Time{}
		switch {
		case c.n >= 0 && filled != nil:
			readRef = filled(c.off)
			ref = readRef
		case c.n < 0:
			ref = asked
		}
		if readRef.IsZero() {
			continue // no upstream GET reached it: nothing to lag behind
		}
		readLag := ms(c.first.Sub(readRef))
		lag := readLag
		if !ref.IsZero() {
			if c.arrived.IsZero() {
				h.unknown++
				lag = ms(c.first.Sub(ref))
			} else {
				lag = ms(c.arrived.Sub(ref))
			}
		}
		if c.n < 0 {
			h.full, h.fullRead = max(h.full, lag), max(h.fullRead, readLag)
		} else {
			h.ranged, h.rangedRead = max(h.ranged, lag), max(h.rangedRead, readLag)
		}
	}
	slices.Sort(h.ttfb)
	return h
}

// herdFigures is what herdLags finds.
type herdFigures struct {
	full, ranged         float64 // worst lags, by arrival at the client
	fullRead, rangedRead float64 // worst lags, by the client's read
	ttfb                 []float64
	unknown              int // clients whose arrival was not known: their read time used
}

// warmConns opens n keep-alive connections to url's server, n requests at
// once, and leaves them idle in hc.
func warmConns(ctx context.Context, hc *http.Client, url string, n int) error {
	var wg sync.WaitGroup
	errs := make([]error, n)
	var ready sync.WaitGroup
	ready.Add(n)
	for i := range n {
		wg.Go(func() {
			ready.Done()
			ready.Wait() // all at once, so none reuses another's connection
			var c atomic.Int64
			_, errs[i] = get(ctx, hc, url, nil, make([]byte, 512), &c)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// fillWatch follows a cairn fill from outside: the size of its temp file
// in the data dir's tmp/, polled every 2 ms.
type fillWatch struct {
	done  chan struct{}
	marks chan []fillMark
}

// fillMark: at t the temp file had not yet passed size (the poll before
// the one that saw it pass, so a lag measured from it is never flattered).
type fillMark struct {
	size int64
	t    time.Time
}

func watchFill(tmpDir, digest string) *fillWatch {
	w := &fillWatch{done: make(chan struct{}), marks: make(chan []fillMark, 1)}
	prefix := strings.Replace(digest, ":", "-", 1)[:len("sha256-")+16] + "-"
	go func() {
		var marks []fillMark
		var last int64 = -1
		prev := time.Now()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.done:
				w.marks <- marks
				return
			case <-tick.C:
			}
			now := time.Now()
			ents, _ := os.ReadDir(tmpDir)
			for _, ent := range ents {
				if !strings.HasPrefix(ent.Name(), prefix) {
					continue
				}
				if info, err := ent.Info(); err == nil && info.Size() > last {
					last = info.Size()
					marks = append(marks, fillMark{size: last, t: prev})
				}
			}
			prev = now
		}
	}()
	return w
}

// stop ends the watch and returns when the fill passed an offset (zero if
// it was never seen to).
func (w *fillWatch) stop() func(off int64) time.Time {
	close(w.done)
	marks := <-w.marks
	return func(off int64) time.Time {
		for _, m := range marks {
			if m.size > off {
				return m.t
			}
		}
		return time.Time{}
	}
}

// fetch reads the client's window of the blob and times its first byte. A
// server that answers a ranged request with the whole blob (200) is read
// up to the window, whose first byte is the one that counts.
func (c *herdClient) fetch(ctx context.Context, hc *http.Client, url string, size int64, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var trace arrivalTrace
	req, err := http.NewRequestWithContext(trace.context(ctx), http.MethodGet, url, nil)
	if err != nil {
		c.err = err
		return
	}
	want := size
	if c.n >= 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", c.off, c.off+c.n-1))
		want = c.n
	}
	resp, err := hc.Do(req)
	if err != nil {
		c.err = err
		return
	}
	defer resp.Body.Close()
	skip := int64(0)
	switch {
	case resp.StatusCode == http.StatusPartialContent && c.n >= 0:
	case resp.StatusCode == http.StatusOK:
		skip = c.off
	default:
		c.err = fmt.Errorf("GET %s: %s", url, resp.Status)
		return
	}
	buf := make([]byte, 256*kib)
	for c.read < skip+want {
		k, err := resp.Body.Read(buf[:min(int64(len(buf)), skip+want-c.read)])
		if k > 0 && c.first.IsZero() && c.read+int64(k) > skip {
			c.first = time.Now()
		}
		c.read += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			c.err = err
			return
		}
	}
	if c.read != skip+want {
		c.err = fmt.Errorf("GET %s: %d bytes, want %d", url, c.read-skip, want)
		return
	}
	if c.read == resp.ContentLength { // the body read whole: its bytes' arrivals are known
		c.arrived = trace.bodyByte(resp, skip)
	}
}

// Scenario 4: one client, one cold blob, against a direct read from the
// upstream and the write + sha256 ceiling of this disk.
func (e *env) coldFill(ctx context.Context, rep *report, _ map[int64]image) error {
	const sc, repo = "4 cold fill", "library/cold"
	size := e.opts.coldSize
	cse := fmt.Sprintf("%s, 1 client", sizeName(size))
	hc := newLoadClient()
	defer hc.CloseIdleConnections()
	for run := range e.opts.runs {
		syscall.Sync() // what the last run wrote must not slow this one
		ceiling, durable, err := writeCeiling(filepath.Join(e.work, "ceiling"), size)
		if err != nil {
			return err
		}
		digest, err := e.seedBlob(ctx, repo, size)
		if err != nil {
			return err
		}
		direct, err := timedGET(ctx, hc, fmt.Sprintf("http://%s/v2/%s/blobs/%s", e.upAddr, repo, digest), nil, size)
		if err != nil {
			return fmt.Errorf("direct read: %w", err)
		}
		if err := e.drop(ctx, repo, digest); err != nil {
			return err
		}
		rep.Notes = append(rep.Notes, fmt.Sprintf("cold fill run %d: write + sha256 ceiling %.0f MB/s (%.0f MB/s with the fsync), direct upstream read %.0f MB/s", run+1, ceiling, durable, direct))
		for _, s := range e.servers(run) {
			digest, err := e.seedBlob(ctx, repo, size)
			if err != nil {
				return err
			}
			syscall.Sync()
			m, err := startMeasure(s)
			if err != nil {
				return err
			}
			busy0, err := procs.MachineBusy()
			if err != nil {
				return err
			}
			mbps, err := timedGET(ctx, hc, blobURL(s, repo, digest), nil, size)
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			busy1, err := procs.MachineBusy()
			if err != nil {
				return err
			}
			// The whole machine's CPU to the client's last byte (every
			// process: upstream, tap, server, client): how close the
			// fill is to what these cores can do at all.
			busy := (busy1 - busy0).Seconds()
			gb := float64(size) / 1e9
			own, err := m.cpuSince()
			if err != nil {
				return err
			}
			rep.add(sc, cse, "server CPU per GB delivered", "CPU-s/GB", false, target{}, s.name, own.Seconds()/gb)
			rep.add(sc, cse, "machine CPU busy to the last byte", "cores", false, target{}, s.name, busy/(gb*1e3/mbps))
			rep.add(sc, cse, "machine CPU per GB delivered", "CPU-s/GB", false, target{}, s.name, busy/gb)
			if err := e.settle(ctx, s, digest); err != nil {
				return err
			}
			rep.add(sc, cse, "throughput to the client's last byte", "MB/s", true, target{kind: ratioMin, value: 2}, s.name, mbps)
			rep.add(sc, cse, "throughput / direct upstream read", "ratio", true, target{}, s.name, mbps/direct)
			if s == e.cairn {
				rep.addCairn(sc, cse, "cairn / write+sha256 ceiling", "ratio", true, target{kind: cairnMinV, value: 0.8}, mbps/ceiling)
			}
			if err := addPeak(rep, sc, s, &m); err != nil {
				return err
			}
			if err := e.drop(ctx, repo, digest); err != nil {
				return err
			}
		}
	}
	return nil
}

// settle waits until server s has stored digest, so that its work in the
// background (the reference stores a blob with a GET of its own, after
// the client's) is over before the next measurement.
func (e *env) settle(ctx context.Context, s *server, digest string) error {
	path := s.blobPath(digest)
	deadline := time.Now().Add(e.opts.clientTimeout)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s: %s not stored %s after the client had it", s.name, digest, e.opts.clientTimeout)
}

// timedGET reads url once, whole (size bytes, or any when size < 0), and
// returns MB/s to the last byte.
func timedGET(ctx context.Context, hc *http.Client, url string, header http.Header, size int64) (float64, error) {
	var counter atomic.Int64
	start := time.Now()
	n, err := get(ctx, hc, url, header, make([]byte, 256*kib), &counter)
	if err != nil {
		return 0, err
	}
	if size >= 0 && n != size {
		return 0, fmt.Errorf("GET %s: %d bytes, want %d", url, n, size)
	}
	return float64(n) / 1e6 / time.Since(start).Seconds(), nil
}

// writeCeiling writes size random bytes to path, hashing them on the way,
// then fsyncs and removes the file. It returns MB/s before the fsync (the
// write + sha256 ceiling: the most a fill can feed its readers on this
// machine) and with it (the most a durable commit can do).
func writeCeiling(path string, size int64) (ceiling, durable float64, err error) {
	buf := make([]byte, 256*kib)
	rng := rand.NewChaCha8([32]byte{1})
	_, _ = rng.Read(buf)
	f, err := os.Create(path)
	if err != nil {
		return 0, 0, err
	}
	defer os.Remove(path)
	defer f.Close()
	h := sha256.New()
	start := time.Now()
	for written := int64(0); written < size; {
		chunk := buf[:min(int64(len(buf)), size-written)]
		chunk[0]++ // no two chunks alike
		if _, err := f.Write(chunk); err != nil {
			return 0, 0, err
		}
		h.Write(chunk)
		written += int64(len(chunk))
	}
	_ = h.Sum(nil)
	ceiling = float64(size) / 1e6 / time.Since(start).Seconds()
	if err := f.Sync(); err != nil {
		return 0, 0, err
	}
	return ceiling, float64(size) / 1e6 / time.Since(start).Seconds(), nil
}
