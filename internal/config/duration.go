package config

import (
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written as "5m", "90s" or "1h30m" in YAML,
// and marshalled back the same way. Every duration in the config must be
// positive: to get the default, leave the key out.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d like time.Duration, without trailing zero units
// ("5m", not "5m0s").
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML implements yaml.Unmarshaler. Its errors are *yaml.TypeError,
// which yaml.v3 collects while it goes on decoding the rest of the file, so
// a bad duration is reported together with every other problem.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	bad := func(format string, args ...any) error {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: column %d: %s",
			n.Line, n.Column, fmt.Sprintf(format, args...))}}
	}
	if n.Kind != yaml.ScalarNode {
		return bad("want a duration like 90s or 5m, got a %s", kindName(n.Kind))
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return bad("%q is not a duration like 90s or 5m", n.Value)
	}
	if v <= 0 {
		return bad("must be > 0, got %s", n.Value)
	}
	*d = Duration(v)
	return nil
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.AliasNode:
		return "alias"
	default:
		return "value"
	}
}
