package config

import (
	"github.com/cairn-mirror/cairn/internal/route"

	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// checkHost returns why s is not a namespace name or alias, or "". A name is
// a lower-case host with an optional :port, and must look like a registry
// host by the test Docker applies to a reference's first component: it
// contains '.' or ':', or is "localhost". So no namespace can be mistaken
// for a Docker Hub organisation.
func checkHost(s string) string {
	switch {
	case strings.Contains(s, "://"):
		return fmt.Sprintf("%q is not a host name: no scheme (the scheme goes in url)", s)
	case strings.ContainsAny(s, "/?#@"):
		return fmt.Sprintf("%q is not a host name: no path (a namespace is a registry host)", s)
	case s != strings.ToLower(s):
		return fmt.Sprintf("%q must be lower case", s)
	case !strings.ContainsAny(s, ".:") && s != "localhost":
		return fmt.Sprintf("%q is not a registry host: it needs a '.' or a :port, or must be localhost (the test Docker applies)", s)
	}
	if route.ValidHost(s) { // the router's own grammar: what passes here routes
		return ""
	}
	if _, port, hasPort := strings.Cut(s, ":"); hasPort && !validPort(port, 1) {
		return fmt.Sprintf("%q has a bad port, want 1 to 65535", s)
	}
	return fmt.Sprintf("%q is not a valid host[:port] (IPv6 literals cannot name a namespace: they cannot appear in a repository path)", s)
}

// validDNSName reports whether s is a host name: dot-separated labels of
// letters, digits and inner hyphens, each 1 to 63 long.
func validDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-'
			if !ok {
				return false
			}
		}
	}
	return true
}

// validPort reports whether s is a decimal port in [min, 65535].
func validPort(s string, min uint64) bool {
	if s == "" || len(s) > 5 || strings.TrimLeft(s, "0123456789") != "" {
		return false
	}
	n, err := strconv.ParseUint(s, 10, 16)
	return err == nil && n >= min
}

// checkListen returns why addr is not a host:port to listen on, or "". The
// host may be empty (every interface); the port may be 0 (any free port).
func checkListen(addr string) string {
	if addr == "" {
		return `empty, want host:port like ":5000"`
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Sprintf(`%q is not host:port like ":5000"`, addr)
	}
	if !validPort(port, 0) {
		return fmt.Sprintf("%q has a bad port, want 0 to 65535", addr)
	}
	if host != "" && net.ParseIP(host) == nil && !validDNSName(host) {
		return fmt.Sprintf("%q has a bad host, want an IP address or a host name", addr)
	}
	return ""
}

// checkURL returns why raw is not a registry endpoint, or "": an absolute
// http or https URL with a host, and no path, query, fragment or userinfo.
func checkURL(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Sprintf("%q is not a URL", raw)
	case u.Scheme == "":
		return fmt.Sprintf("%q is not absolute, want like https://ghcr.io", raw)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Sprintf("%q has scheme %q, want http or https", raw, u.Scheme)
	case u.Opaque != "" || u.Hostname() == "":
		return fmt.Sprintf("%q has no host, want like https://ghcr.io", raw)
	case u.User != nil:
		return fmt.Sprintf("%q holds credentials, use username and password_file", u.Redacted())
	case u.Path != "" && u.Path != "/":
		return fmt.Sprintf("%q has a path, want only scheme://host[:port]", raw)
	case u.RawQuery != "" || u.ForceQuery || strings.Contains(raw, "?"):
		return fmt.Sprintf("%q has a query, want only scheme://host[:port]", raw)
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return fmt.Sprintf("%q has a fragment, want only scheme://host[:port]", raw)
	case u.Port() != "" && !validPort(u.Port(), 1), strings.HasSuffix(u.Host, ":"):
		return fmt.Sprintf("%q has a bad port, want 1 to 65535", raw)
	}
	return ""
}
