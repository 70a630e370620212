// Package httprange parses the HTTP Range request header for a single byte
// range (what registry clients send to resume a blob). It imports nothing
// from the project but internal/ocierr.
package httprange

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/cairn-mirror/cairn/internal/ocierr"
)

// Range is a satisfiable byte range of a resource: Length bytes from Start.
type Range struct {
	Start, Length int64
}

// ContentRange is the Content-Range value of a 206 answering r.
func (r Range) ContentRange(size int64) string {
	return fmt.Sprintf("bytes %d-%d/%d", r.Start, r.Start+r.Length-1, size)
}

// Parse reads header against a resource of size bytes. ok is false when the
// whole resource should be sent: no header, a unit other than bytes, or
// several ranges (RFC 9110 lets a server ignore Range). A malformed or
// unsatisfiable bytes range wraps ocierr.RangeInvalid (416).
func Parse(header string, size int64) (r Range, ok bool, err error) {
	spec, found := strings.CutPrefix(header, "bytes=")
	if header == "" || !found || strings.Contains(spec, ",") {
		return Range{}, false, nil
	}
	first, last, dash := strings.Cut(strings.TrimSpace(spec), "-")
	if !dash {
		return Range{}, false, invalid(header, size)
	}
	if first == "" {
		return suffix(last, header, size)
	}
	start, err := parseNum(first)
	if err != nil || start >= size {
		return Range{}, false, invalid(header, size)
	}
	end := size - 1
	if last != "" {
		e, err := parseNum(last)
		if err != nil || e < start {
			return Range{}, false, invalid(header, size)
		}
		end = min(e, size-1)
	}
	return Range{Start: start, Length: end - start + 1}, true, nil
}

// suffix handles bytes=-N, the last N bytes.
func suffix(n, header string, size int64) (Range, bool, error) {
	v, err := parseNum(n)
	if err != nil || v == 0 || size == 0 {
		return Range{}, false, invalid(header, size)
	}
	v = min(v, size)
	return Range{Start: size - v, Length: v}, true, nil
}

// parseNum accepts only decimal digits (no sign, no spaces) that fit int64.
func parseNum(s string) (int64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("not a number: %q", s)
	}
	return strconv.ParseInt(s, 10, 64)
}

func invalid(header string, size int64) error {
	return fmt.Errorf("range %q cannot be satisfied for %d bytes: %w", header, size, ocierr.RangeInvalid)
}
