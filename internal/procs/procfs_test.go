package procs

import (
	"os"
	"runtime"
	"testing"
	"time"
)

// Busy CPU shows in MachineBusy and in this process's CPUTime, and the
// machine's figure never outruns the wall clock times the CPUs.
func TestMachineBusyCountsWork(t *testing.T) {
	m0, err := MachineBusy()
	if err != nil {
		t.Fatal(err)
	}
	p0, err := CPUTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for time.Since(start) < 400*time.Millisecond {
		// spin
	}
	wall := time.Since(start)
	m1, _ := MachineBusy()
	p1, _ := CPUTime(os.Getpid())
	tick := time.Second / clockTicks
	if d := p1 - p0; d < 300*time.Millisecond {
		t.Errorf("this process used %v of CPU spinning for %v", d, wall)
	}
	if d := m1 - m0; d < 300*time.Millisecond || d > wall*time.Duration(runtime.NumCPU())+4*tick {
		t.Errorf("machine busy %v over %v on %d CPUs", d, wall, runtime.NumCPU())
	}
}
