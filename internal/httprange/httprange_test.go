package httprange

import (
	"errors"
	"testing"

	"github.com/cairn-mirror/cairn/internal/ocierr"
)

func TestParse(t *testing.T) {
	tests := []struct {
		header  string
		size    int64
		want    Range
		ok, bad bool
	}{
		{header: "", size: 10},
		{header: "items=0-1", size: 10},
		{header: "bytes=0-1,4-5", size: 10},
		{header: "bytes=0-", size: 10, want: Range{0, 10}, ok: true},
		{header: "bytes=3-", size: 10, want: Range{3, 7}, ok: true},
		{header: "bytes=3-5", size: 10, want: Range{3, 3}, ok: true},
		{header: "bytes=3-500", size: 10, want: Range{3, 7}, ok: true},
		{header: "bytes=9-9", size: 10, want: Range{9, 1}, ok: true},
		{header: "bytes=-4", size: 10, want: Range{6, 4}, ok: true},
		{header: "bytes=-40", size: 10, want: Range{0, 10}, ok: true},
		{header: "bytes=10-", size: 10, bad: true},
		{header: "bytes=5-3", size: 10, bad: true},
		{header: "bytes=-0", size: 10, bad: true},
		{header: "bytes=0-", size: 0, bad: true},
		{header: "bytes=-1", size: 0, bad: true},
		{header: "bytes=abc", size: 10, bad: true},
		{header: "bytes=+1-2", size: 10, bad: true},
		{header: "bytes=1--2", size: 10, bad: true},
		{header: "bytes=99999999999999999999-", size: 10, bad: true},
	}
	for _, tt := range tests {
		got, ok, err := Parse(tt.header, tt.size)
		if tt.bad {
			if !errors.Is(err, ocierr.RangeInvalid) {
				t.Errorf("Parse(%q, %d) error %v, want RANGE_INVALID", tt.header, tt.size, err)
			}
			continue
		}
		if err != nil || ok != tt.ok || got != tt.want {
			t.Errorf("Parse(%q, %d) = %+v, %v, %v; want %+v, %v", tt.header, tt.size, got, ok, err, tt.want, tt.ok)
		}
	}
}

func TestContentRange(t *testing.T) {
	if got, want := (Range{Start: 3, Length: 4}).ContentRange(10), "bytes 3-6/10"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"bytes=0-", "bytes=-5", "bytes=3-7", "bytes=1-2,3-4", "bytes=x"} {
		f.Add(s, int64(100))
	}
	f.Fuzz(func(t *testing.T, header string, size int64) {
		if size < 0 {
			return
		}
		r, ok, err := Parse(header, size)
		if err != nil || !ok {
			return
		}
		if r.Start < 0 || r.Length <= 0 || r.Start+r.Length > size {
			t.Fatalf("Parse(%q, %d) = %+v outside the resource", header, size, r)
		}
	})
}
