package main

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Server names, as they appear in the report.
const (
	nameCairn = "cairn"
	nameRef   = "reference"
)

// targetKind is how a figure is judged.
type targetKind int

const (
	noTarget  targetKind = iota
	ratioMin             // median(cairn) / median(reference) >= value
	cairnMax             // cairn's worst run <= value
	cairnEq              // every cairn run == value (a count: exact)
	cairnMinV            // cairn's worst run >= value
)

type target struct {
	kind  targetKind
	value float64
	// exact targets are correctness, not speed: they fail the run, the
	// smoke pass included.
	exact bool
}

func (t target) String() string {
	switch t.kind {
	case ratioMin:
		return fmt.Sprintf(">= %gx", t.value)
	case cairnMax:
		return fmt.Sprintf("cairn <= %g", t.value)
	case cairnEq:
		return fmt.Sprintf("cairn = %g", t.value)
	case cairnMinV:
		return fmt.Sprintf("cairn >= %g", t.value)
	}
	return ""
}

// figure is one measured quantity of one case, per server, per run.
type figure struct {
	Scenario string               `json:"scenario"`
	Case     string               `json:"case"`
	Name     string               `json:"figure"`
	Unit     string               `json:"unit"`
	Higher   bool                 `json:"higher_is_better"`
	Values   map[string][]float64 `json:"runs"` // server -> one value per run
	target   target
	// OnlyCairn figures have no reference counterpart (cairn / ceiling).
	OnlyCairn bool `json:"only_cairn,omitempty"`
}

type report struct {
	Date     time.Time `json:"date"`
	Commit   string    `json:"commit"`
	Runs     int       `json:"runs"`
	Smoke    bool      `json:"smoke"`
	CPUs     int       `json:"cpus"`
	GoVer    string    `json:"go"`
	Registry string    `json:"reference_version"`
	Notes    []string  `json:"notes,omitempty"`
	figures  []*figure
	index    map[string]*figure
}

func newReport() *report { return &report{index: map[string]*figure{}} }

// add records one run's value of a figure for server, creating the figure
// (with its unit, direction and target) on first use.
func (r *report) add(scenario, cse, name, unit string, higher bool, t target, server string, v float64) {
	key := scenario + "\x00" + cse + "\x00" + name
	f, ok := r.index[key]
	if !ok {
		f = &figure{Scenario: scenario, Case: cse, Name: name, Unit: unit, Higher: higher, Values: map[string][]float64{}, target: t}
		r.index[key] = f
		r.figures = append(r.figures, f)
	}
	f.Values[server] = append(f.Values[server], v)
}

// addCairn records a figure only cairn has.
func (r *report) addCairn(scenario, cse, name, unit string, higher bool, t target, v float64) {
	r.add(scenario, cse, name, unit, higher, t, nameCairn, v)
	r.index[scenario+"\x00"+cse+"\x00"+name].OnlyCairn = true
}

type stats struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

func summarize(vs []float64) stats {
	if len(vs) == 0 {
		return stats{Median: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stats{Median: m, Min: s[0], Max: s[len(s)-1]}
}

// ratio is median(cairn) / median(reference), NaN when undefined.
func (f *figure) ratio() float64 {
	if f.OnlyCairn {
		return math.NaN()
	}
	c, ref := summarize(f.Values[nameCairn]).Median, summarize(f.Values[nameRef]).Median
	if ref == 0 {
		return math.NaN()
	}
	return c / ref
}

// met reports whether the figure reaches its target (true without one).
func (f *figure) met() bool {
	switch f.target.kind {
	case ratioMin:
		return f.ratio() >= f.target.value
	case cairnMax:
		return summarize(f.Values[nameCairn]).Max <= f.target.value
	case cairnMinV:
		return summarize(f.Values[nameCairn]).Min >= f.target.value
	case cairnEq:
		for _, v := range f.Values[nameCairn] {
			if v != f.target.value {
				return false
			}
		}
	}
	return true
}

// misses lists the figures that missed their targets: the exact ones
// always, the speed ones when all is set.
func (r *report) misses(all bool) []string {
	var out []string
	for _, f := range r.figures {
		if f.target.kind != noTarget && (all || f.target.exact) && !f.met() {
			out = append(out, fmt.Sprintf("%s %s %s: target %s; cairn %s, reference %s",
				f.Scenario, f.Case, f.Name, f.target, fmtStats(f.Values[nameCairn]), fmtStats(f.Values[nameRef])))
		}
	}
	return out
}

func fmtNum(v float64) string {
	switch a := math.Abs(v); {
	case math.IsNaN(v):
		return "-"
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	case a == 0:
		return "0"
	}
	return fmt.Sprintf("%.3f", v)
}

func fmtStats(vs []float64) string {
	if len(vs) == 0 {
		return "-"
	}
	s := summarize(vs)
	if len(vs) == 1 || s.Min == s.Max {
		return fmtNum(s.Median)
	}
	return fmt.Sprintf("%s (%s-%s)", fmtNum(s.Median), fmtNum(s.Min), fmtNum(s.Max))
}

func (r *report) markdown() string {
	var b strings.Builder
	kind := fmt.Sprintf("%d runs per server, alternating", r.Runs)
	if r.Smoke {
		kind = "smoke pass: small blobs, one run; not a measurement"
	}
	fmt.Fprintf(&b, "## cairn side by side with distribution's proxy mode\n\n")
	fmt.Fprintf(&b, "Reproduce with `make bench-harness` (or `go run ./benchmarks/cmd/cairn-bench`).\n")
	fmt.Fprintf(&b, "%s, commit %s, %d CPUs, %s, reference %s; %s.\n", r.Date.UTC().Format("2006-01-02 15:04 MST"), r.Commit, r.CPUs, r.GoVer, r.Registry, kind)
	fmt.Fprintf(&b, "Ratio is median(cairn) / median(reference); each figure is the median of the runs, with min-max in brackets.\n\n")
	for _, part := range []struct {
		title    string
		targeted bool
	}{{"Against the targets", true}, {"All figures", false}} {
		fmt.Fprintf(&b, "### %s\n\n", part.title)
		fmt.Fprintf(&b, "| scenario | case | figure | cairn / reference | cairn | reference | target | met |\n")
		fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|\n")
		for _, f := range r.figures {
			if part.targeted && f.target.kind == noTarget {
				continue
			}
			b.WriteString(f.row())
		}
		b.WriteString("\n")
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	return b.String()
}

// row is the figure's line in the Markdown tables.
func (f *figure) row() string {
	dir := "higher is better"
	if !f.Higher {
		dir = "lower is better"
	}
	ratio := "-"
	if rt := f.ratio(); !math.IsNaN(rt) {
		ratio = fmt.Sprintf("%.2fx", rt)
	}
	met := ""
	if f.target.kind != noTarget {
		met = "yes"
		if !f.met() {
			met = "**no**"
		}
	}
	return fmt.Sprintf("| %s | %s | %s (%s, %s) | %s | %s | %s | %s | %s |\n",
		f.Scenario, f.Case, f.Name, f.Unit, dir, ratio, fmtStats(f.Values[nameCairn]), fmtStats(f.Values[nameRef]), f.target, met)
}

func (r *report) json() []byte {
	type jsonFigure struct {
		*figure
		Cairn  stats    `json:"cairn"`
		Ref    *stats   `json:"reference,omitempty"`
		Ratio  *float64 `json:"ratio,omitempty"`
		Target string   `json:"target,omitempty"`
		Met    *bool    `json:"met,omitempty"`
	}
	out := struct {
		*report
		Figures []jsonFigure `json:"figures"`
	}{report: r}
	for _, f := range r.figures {
		jf := jsonFigure{figure: f, Cairn: summarize(f.Values[nameCairn])}
		if !f.OnlyCairn && len(f.Values[nameRef]) > 0 {
			s := summarize(f.Values[nameRef])
			jf.Ref = &s
		}
		if rt := f.ratio(); !math.IsNaN(rt) {
			jf.Ratio = &rt
		}
		if f.target.kind != noTarget {
			m := f.met()
			jf.Target, jf.Met = f.target.String(), &m
		}
		out.Figures = append(out.Figures, jf)
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		panic(err) // plain data: cannot fail
	}
	return append(b, '\n')
}
