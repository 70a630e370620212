package storage

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// putTags writes n tags of reg.local/app named prefix0, prefix1 ...
func putTags(t *testing.T, s *Store, prefix string, n int) {
	t.Helper()
	for i := range n {
		rec := TagRecord{Digest: digestOf([]byte(prefix)), Source: "push"}
		if _, err := s.PutTag("reg.local", "app", fmt.Sprintf("%s%d", prefix, i), rec); err != nil {
			t.Fatal(err)
		}
	}
}

func mustOldest(t *testing.T, s *Store) uint64 {
	t.Helper()
	n, err := s.OldestChange()
	if err != nil {
		t.Fatalf("OldestChange: %v", err)
	}
	return n
}

// Compaction removes the entries older than its cut-off and nothing
// newer; the oldest retained seq moves past them; a consumer that fell
// behind them is told to rescan, and one that kept up reads on.
func TestCompactionAndALaggingConsumer(t *testing.T) {
	s := openStore(t, t.TempDir())
	clk := newClock(s)
	if got := mustOldest(t, s); got != 1 {
		t.Errorf("OldestChange of an empty log = %d, want 1", got)
	}
	putTags(t, s, "old", 5) // seqs 1-5
	cutoff := clk.Advance(time.Hour)
	putTags(t, s, "new", 5) // seqs 6-10
	if n, err := s.CompactChanges(cutoff); n != 5 || err != nil {
		t.Fatalf("CompactChanges = %d, %v; want 5 removed", n, err)
	}
	if got := mustOldest(t, s); got != 6 {
		t.Errorf("OldestChange = %d, want 6", got)
	}
	for _, since := range []uint64{0, 4, 11} {
		if cs, err := s.Changes(since, 10); !errors.Is(err, ErrChangesCompacted) {
			t.Errorf("Changes(%d) = %v, %v; want ErrChangesCompacted", since, seqsOf(cs), err)
		}
	}
	if got := seqsOf(changesAfter(t, s, 5)); fmt.Sprint(got) != "[6 7 8 9 10]" {
		t.Errorf("Changes(5) = %v, want 6-10", got)
	}
	if got := changesAfter(t, s, 10); len(got) != 0 {
		t.Errorf("Changes(10) = %v, want none", got)
	}
	if n, err := s.CompactChanges(clk.Advance(time.Hour)); n != 5 || err != nil {
		t.Fatalf("second CompactChanges = %d, %v; want 5 removed", n, err)
	}
	if got := mustOldest(t, s); got != 11 {
		t.Errorf("OldestChange of a fully compacted log = %d, want 11 (seq + 1)", got)
	}
	if got := changesAfter(t, s, 10); len(got) != 0 {
		t.Errorf("Changes(10) after compacting all = %v, want none (up to date)", got)
	}
	if _, err := s.Changes(9, 10); !errors.Is(err, ErrChangesCompacted) {
		t.Errorf("Changes(9) after compacting all: %v, want ErrChangesCompacted", err)
	}
	putTags(t, s, "later", 1)
	if got := seqsOf(changesAfter(t, s, 10)); fmt.Sprint(got) != "[11]" {
		t.Errorf("Changes(10) after a new write = %v, want [11]", got)
	}
}

// Compaction stops at the first entry inside the window, so what is left
// is a suffix of the log even if the clock went back; and it removes more
// entries than one transaction holds, in several.
func TestCompactionKeepsASuffix(t *testing.T) {
	s := openStore(t, t.TempDir())
	clk := newClock(s)
	const n = 2*changeCompactBatch + 100
	t0 := clk.Now()
	err := s.updateLogged(func(_ *badger.Txn, log *txnLog) error {
		for i := range n {
			at := t0.Add(time.Duration(i) * time.Millisecond)
			if i == n-10 {
				at = t0.Add(-time.Hour) // the clock went back
			}
			if _, err := log.add(Change{Time: at, Kind: ChangeEvict, Cause: CauseEvict, Digest: fakeDigest(i)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cutoff := t0.Add(time.Duration(n-20) * time.Millisecond)
	if got, err := s.CompactChanges(cutoff); got != n-20 || err != nil {
		t.Fatalf("CompactChanges = %d, %v; want %d", got, err, n-20)
	}
	if got := seqsOf(changesAfter(t, s, n-20)); len(got) != 20 || got[0] != n-19 || got[19] != n {
		t.Errorf("left %v, want seqs %d-%d (the entry from before the cut-off stays behind newer ones)", got, n-19, n)
	}
}

// KeepChangeLog compacts to the retention window as it starts (and then
// on its ticker), and returns nil when its context ends.
func TestKeepChangeLogCompactsToTheWindow(t *testing.T) {
	s := openStore(t, t.TempDir(), WithChangeRetention(time.Hour))
	clk := newClock(s)
	putTags(t, s, "old", 3)
	clk.Advance(90 * time.Minute)
	putTags(t, s, "new", 2)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.KeepChangeLog(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for mustOldest(t, s) != 4 {
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s OldestChange = %d, want 4 (the entries older than an hour gone)", mustOldest(t, s))
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("KeepChangeLog = %v, want nil when its context ends", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("KeepChangeLog still running 10 s after its context ended")
	}
}

// WaitChange returns at once when an entry is already past its position,
// wakes on the next commit (whose entry Changes then returns), and returns
// when its context ends or the store closes.
func TestWaitChange(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	putTags(t, s, "a", 1)
	if seq, err := s.WaitChange(t.Context(), 0); seq != 1 || err != nil {
		t.Errorf("WaitChange(0) with seq 1 = %d, %v; want 1 at once", seq, err)
	}
	type result struct {
		seq uint64
		err error
	}
	wait := func(ctx context.Context, after uint64) <-chan result {
		ch := make(chan result, 1)
		go func() {
			seq, err := s.WaitChange(ctx, after)
			ch <- result{seq, err}
		}()
		return ch
	}
	receive := func(ch <-chan result) result {
		t.Helper()
		select {
		case r := <-ch:
			return r
		case <-time.After(10 * time.Second):
			t.Fatal("WaitChange still waiting after 10 s")
			return result{}
		}
	}

	woken := wait(t.Context(), 1)
	putTags(t, s, "b", 1)
	if r := receive(woken); r.seq != 2 || r.err != nil {
		t.Errorf("WaitChange(1) across a write = %d, %v; want 2", r.seq, r.err)
	}
	if got := seqsOf(changesAfter(t, s, 1)); fmt.Sprint(got) != "[2]" {
		t.Errorf("Changes(1) once woken = %v, want [2]", got)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancelled := wait(ctx, 2)
	cancel()
	if r := receive(cancelled); !errors.Is(r.err, context.Canceled) {
		t.Errorf("WaitChange with its context cancelled = %d, %v; want context.Canceled", r.seq, r.err)
	}

	closing := wait(t.Context(), 2)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if r := receive(closing); !errors.Is(r.err, ErrClosed) {
		t.Errorf("WaitChange across Close = %d, %v; want ErrClosed", r.seq, r.err)
	}
}

// A process killed (SIGKILL) in the middle of its writes loses no entry
// and invents none: after the restart the log is exactly seqs 1..seq, in
// the order of the writes; every write the child saw return is there;
// each entry's record is there and each record has its entry. The
// writes run in a child process, killed after a number of them.
func TestKilledWriterLosesNoEntryAndInventsNone(t *testing.T) {
	if dir := os.Getenv("CAIRN_TEST_CHANGELOG_CHILD"); dir != "" {
		writeUntilKilled(t, dir)
		return
	}
	// The kill lands after the 60th acknowledgement, at once or a little
	// later: between two writes, or inside one.
	for _, delay := range []time.Duration{0, 300 * time.Microsecond, 800 * time.Microsecond, 1500 * time.Microsecond} {
		t.Run(delay.String(), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			acked := killChild(t, dir, 60, delay)
			checkLogAfterKill(t, openStore(t, dir), acked)
		})
	}
}

// killChild runs writeUntilKilled on dir in a child process and kills it
// (SIGKILL) delay after it acknowledged write n. It returns the last seq
// the child acknowledged.
func killChild(t *testing.T, dir string, n uint64, delay time.Duration) uint64 {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledWriterLosesNoEntryAndInventsNone$")
	cmd.Env = append(os.Environ(), "CAIRN_TEST_CHANGELOG_CHILD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := uint64(0)
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		seq, err := strconv.ParseUint(strings.TrimPrefix(lines.Text(), "ok "), 10, 64)
		if err != nil {
			t.Fatalf("child said %q", lines.Text())
		}
		acked = seq
		if acked == n {
			time.Sleep(delay) // where the kill lands, not a synchronisation
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
		}
	}
	werr := cmd.Wait()
	if acked < n {
		t.Fatalf("the child acknowledged %d writes, then stopped (%v):\n%s", acked, werr, stderr.String())
	}
	return acked
}

// checkLogAfterKill checks the log of a store reopened after
// writeUntilKilled was killed, acked its last acknowledged seq.
func checkLogAfterKill(t *testing.T, s *Store, acked uint64) {
	t.Helper()
	seq := mustSeq(t, s)
	if seq < acked || seq > acked+1 {
		t.Fatalf("seq after the kill = %d, want %d or %d (the last acknowledged write, or the one in flight)", seq, acked, acked+1)
	}
	cs := changesAfter(t, s, 0)
	if uint64(len(cs)) != seq {
		t.Fatalf("%d entries, want %d (one per write, seq 1..%d)", len(cs), seq, seq)
	}
	tags := 0
	for i, c := range cs {
		want := childWrite(i)
		if c.Seq != uint64(i)+1 || c.Kind != want.Kind || c.Tag != want.Tag || c.Digest != want.Digest {
			t.Fatalf("entry %d = %+v, want seq %d for write %+v", i, c, i+1, want)
		}
		switch c.Kind {
		case ChangeTagPut:
			tags++
			rec, err := s.Tag("reg.local", "app", c.Tag)
			if err != nil || rec.Seq != c.Seq || rec.Digest != c.Digest {
				t.Errorf("entry %d: tag %s = %+v, %v; want its record, seq %d", i, c.Tag, rec, err, c.Seq)
			}
		case ChangeManifestPut:
			if info, err := s.Stat(c.Digest); err != nil || info.Kind != KindManifest {
				t.Errorf("entry %d: manifest %s = %+v, %v; want it stored", i, c.Digest, info, err)
			}
		}
	}
	if all, err := s.Tags("reg.local", "app"); err != nil || len(all) != tags {
		t.Errorf("%d tags stored (%v), want %d: one per tag entry", len(all), err, tags)
	}
	next := childWrite(int(seq)) // the write the kill cut, if any
	if next.Kind == ChangeManifestPut {
		if info, err := s.Stat(next.Digest); err == nil && info.Kind == KindManifest {
			t.Errorf("manifest of write %d stored as a manifest without its entry", seq)
		}
	}
}

// childWrite is the i-th write of writeUntilKilled: tags, and every third
// a manifest.
func childWrite(i int) Change {
	body := fmt.Appendf(nil, `{"schemaVersion":2,"write":%d}`, i)
	if i%3 == 2 {
		return Change{Kind: ChangeManifestPut, Digest: digestOf(body)}
	}
	return Change{Kind: ChangeTagPut, Tag: fmt.Sprintf("t%06d", i), Digest: digestOf(body)}
}

// writeUntilKilled is the child of TestKilledWriterLosesNoEntryAndInventsNone:
// it writes and acknowledges each write's seq on stdout until killed.
func writeUntilKilled(t *testing.T, dir string) {
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100000 {
		w := childWrite(i)
		var seq uint64
		if w.Kind == ChangeManifestPut {
			body := fmt.Appendf(nil, `{"schemaVersion":2,"write":%d}`, i)
			_, err = s.PutManifest(w.Digest, "application/json", body, ManifestWrite{Namespace: "reg.local", Repo: "app", Cause: CausePush})
			if err == nil {
				seq, err = s.Seq()
			}
		} else {
			var rec TagRecord
			rec, err = s.PutTag("reg.local", "app", w.Tag, TagRecord{Digest: w.Digest, Source: "push"})
			seq = rec.Seq
		}
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		fmt.Fprintf(os.Stdout, "ok %d\n", seq)
	}
	t.Fatal("not killed after 100000 writes")
}

// A follower that reads with Changes and waits with WaitChange while
// writers race gets every entry once, in seq order, and never a gap.
func TestFollowerReadsEveryEntryOnceWhileWritersRace(t *testing.T) {
	s := openStore(t, t.TempDir())
	const writers, each = 4, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				rec := TagRecord{Digest: digestOf([]byte("m")), Source: "push"}
				if _, err := s.PutTag("reg.local", "app", fmt.Sprintf("w%d-%d", w, i), rec); err != nil {
					t.Errorf("PutTag: %v", err)
					return
				}
			}
		})
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	seen := map[string]bool{}
	last := uint64(0)
	for last < writers*each {
		cs, err := s.Changes(last, 7)
		if err != nil {
			t.Fatalf("Changes(%d): %v", last, err)
		}
		for _, c := range cs {
			if c.Seq != last+1 || seen[c.Tag] {
				t.Fatalf("after seq %d got entry %d for tag %s (seen before: %v)", last, c.Seq, c.Tag, seen[c.Tag])
			}
			seen[c.Tag], last = true, c.Seq
		}
		if len(cs) == 0 {
			if _, err := s.WaitChange(ctx, last); err != nil {
				t.Fatalf("WaitChange(%d): %v", last, err)
			}
		}
	}
	wg.Wait()
	if len(seen) != writers*each {
		t.Errorf("followed %d tags, want %d", len(seen), writers*each)
	}
}
