package route

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Pattern is the name of a wildcard namespace: a host name in which some
// labels are "*" ("*.dkr.ecr.*.amazonaws.com"). A "*" stands for exactly
// one DNS label; the port, if any, is fixed. Each host it matches is a
// namespace of its own (<host>/<repo> stays the canonical name), so only
// hosts of a configured shape are ever reached: cairn is no open proxy.
type Pattern struct {
	name   string
	labels []string // "*" or a literal label
	port   string   // "" or the digits after ':'
}

// ParsePattern checks s: lowercase, labels of letters, digits and inner
// hyphens or a whole "*", at least one "*", and the last two labels
// literal (a pattern may not span a whole top-level domain).
func ParsePattern(s string) (Pattern, error) {
	if s != strings.ToLower(s) {
		return Pattern{}, errors.New("must be lower case")
	}
	host, port, hasPort := strings.Cut(s, ":")
	if hasPort && !validPort(port) {
		return Pattern{}, fmt.Errorf("port %q: want 1 to 65535, and no * in it", port)
	}
	if len(s) > 255 {
		return Pattern{}, errors.New("longer than a host name can be")
	}
	labels := strings.Split(host, ".")
	stars := 0
	for _, l := range labels {
		switch {
		case l == "*":
			stars++
		case strings.Contains(l, "*"):
			return Pattern{}, fmt.Errorf("label %q: * must be a whole label", l)
		case !validLabel(l):
			return Pattern{}, fmt.Errorf("label %q is not a DNS label", l)
		}
	}
	if stars == 0 {
		return Pattern{}, errors.New("holds no *: not a wildcard")
	}
	if n := len(labels); n < 3 || labels[n-1] == "*" || labels[n-2] == "*" {
		return Pattern{}, errors.New("its last two labels must be literal (like *.example.com): a wildcard may not span a whole domain")
	}
	return Pattern{name: s, labels: labels, port: port}, nil
}

// CheckPattern returns why s is not a wildcard namespace name, or "".
func CheckPattern(s string) string {
	if _, err := ParsePattern(s); err != nil {
		return fmt.Sprintf("%q is not a wildcard host pattern: %v", s, err)
	}
	return ""
}

// String is the pattern as configured.
func (p Pattern) String() string { return p.name }

// Match reports whether host (as a client sent it) is of p's shape: a
// valid lowercase host name, not an IP literal, with the same number of
// labels, each literal one equal, and the same port.
func (p Pattern) Match(host string) bool {
	if p.name == "" || !ValidHost(host) {
		return false
	}
	name, port, _ := strings.Cut(host, ":")
	if port != p.port {
		return false
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return false
	}
	labels := strings.Split(name, ".")
	if len(labels) != len(p.labels) {
		return false
	}
	for i, l := range p.labels {
		if l != "*" && l != labels[i] {
			return false
		}
	}
	return true
}
