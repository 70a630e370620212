package config

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/dustin/go-humanize"
	"gopkg.in/yaml.v3"
)

// ByteSize is a size written as "200GiB", "500MB", "1.5TiB" or a plain
// count of bytes in YAML, and marshalled back in binary units when exact.
type ByteSize int64

// ParseByteSize reads a size like "200GiB", "500MB", "1.5TiB" or "1024"
// (go-humanize's grammar: binary units with "i", decimal without).
func ParseByteSize(s string) (ByteSize, error) {
	n, err := humanize.ParseBytes(strings.TrimSpace(s))
	if err != nil || n > 1<<62 {
		return 0, fmt.Errorf("%q is not a size like 200GiB, 500MB or 1048576", s)
	}
	return ByteSize(n), nil
}

// String formats the size in the largest binary unit that is exact.
func (b ByteSize) String() string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if b != 0 && int64(b)%u.mult == 0 {
			return strconv.FormatInt(int64(b)/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// MarshalYAML implements yaml.Marshaler.
func (b ByteSize) MarshalYAML() (any, error) { return b.String(), nil }

// UnmarshalYAML implements yaml.Unmarshaler; like Duration, its errors are
// collected with every other problem of the file.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteSize(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil {
		msg := "want a size like 200GiB"
		if err != nil {
			msg = err.Error()
		}
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: column %d: %s", n.Line, n.Column, msg)}}
	}
	*b = v
	return nil
}
