package route

import (
	"fmt"
	"strings"

	"github.com/cairn-mirror/cairn/internal/ocierr"
)

// ValidName reports whether name is a repository name the OCI Distribution
// specification allows, except that the first of several components may
// also be a registry host (lowercase, with an optional :port), the path form
// of a namespace. Errors wrap ocierr.NameInvalid.
func ValidName(name string) error {
	if name == "" || len(name) > maxNameLen {
		return fmt.Errorf("repository name of %d bytes: %w", len(name), ocierr.NameInvalid)
	}
	comps := strings.Split(name, "/")
	for i, c := range comps {
		if validComponent(c) || (i == 0 && len(comps) > 1 && ValidHost(c)) {
			continue
		}
		return fmt.Errorf("repository name %q: component %q: %w", name, c, ocierr.NameInvalid)
	}
	return nil
}

// validComponent matches [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*: runs of
// lowercase alphanumerics joined by one separator each.
func validComponent(c string) bool {
	i := 0
	for {
		start := i
		for i < len(c) && isLowerAlnum(c[i]) {
			i++
		}
		if i == start {
			return false
		}
		if i == len(c) {
			return true
		}
		start = i
		for i < len(c) && !isLowerAlnum(c[i]) {
			i++
		}
		if !validSeparator(c[start:i]) {
			return false
		}
	}
}

func validSeparator(s string) bool {
	switch s {
	case ".", "_", "__":
		return true
	}
	return strings.Trim(s, "-") == ""
}

// IsHostLike is the test Docker applies to a name's first component: it
// names a registry if it contains '.' or ':' or is "localhost".
func IsHostLike(c string) bool {
	return strings.ContainsAny(c, ".:") || c == "localhost"
}

// ValidHost accepts a lowercase host-like DNS name or IPv4 address with an
// optional port (1 to 65535): a namespace name, alias or leading path
// component. IPv6 literals cannot appear in a repository path, so they are
// not namespace names either. The one grammar for hosts: config checks
// namespace names with it.
func ValidHost(c string) bool {
	if !IsHostLike(c) || len(c) > 255 {
		return false
	}
	host, port, hasPort := strings.Cut(c, ":")
	if hasPort && !validPort(port) {
		return false
	}
	for label := range strings.SplitSeq(host, ".") {
		if !validLabel(label) {
			return false
		}
	}
	return true
}

func validPort(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
		n = n*10 + int(p[i]-'0')
	}
	return n >= 1 && n <= 65535
}

func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		if !isLowerAlnum(l[i]) && l[i] != '-' {
			return false
		}
	}
	return true
}

// ValidReference accepts a tag or a digest. Errors wrap
// ocierr.ManifestInvalid for a bad tag and ocierr.DigestInvalid for a bad
// digest.
func ValidReference(ref string) error {
	if strings.Contains(ref, ":") {
		return ValidDigest(ref)
	}
	return ValidTag(ref)
}

// ValidTag matches [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}.
func ValidTag(tag string) error {
	ok := tag != "" && len(tag) <= 128 && (isAlnum(tag[0]) || tag[0] == '_')
	for i := 1; ok && i < len(tag); i++ {
		ok = isAlnum(tag[i]) || tag[i] == '_' || tag[i] == '.' || tag[i] == '-'
	}
	if !ok {
		return fmt.Errorf("tag %q: %w", tag, ocierr.ManifestInvalid)
	}
	return nil
}

// IsDigest reports whether ref has the form of a digest (algorithm:encoded)
// rather than a tag, whatever its validity.
func IsDigest(ref string) bool { return strings.Contains(ref, ":") }

// ValidDigest accepts the digests cairn can verify: sha256 with 64 and
// sha512 with 128 lowercase hex characters. Errors wrap ocierr.DigestInvalid.
func ValidDigest(d string) error {
	alg, hex, _ := strings.Cut(d, ":")
	ok := (alg == "sha256" && len(hex) == 64) || (alg == "sha512" && len(hex) == 128)
	for i := 0; ok && i < len(hex); i++ {
		ok = (hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f')
	}
	if !ok {
		return fmt.Errorf("digest %q: %w", d, ocierr.DigestInvalid)
	}
	return nil
}

func isLowerAlnum(b byte) bool { return (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9') }
func isAlnum(b byte) bool      { return isLowerAlnum(b) || (b >= 'A' && b <= 'Z') }
