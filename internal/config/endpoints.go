package config

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/cairn-mirror/cairn/internal/route"
)

// Endpoint is one address of a mirror's upstream registry. A namespace's
// endpoints are tried in order; each field left empty takes the
// namespace's value (ApplyDefaults copies it in).
type Endpoint struct {
	// URL is the registry's API root: http(s)://host[:port][/path]. /v2/
	// is appended to the path (Artifactory and Nexus serve the API under
	// one). In a wildcard namespace it holds {host}, the matched host.
	URL string `yaml:"url"`
	// Capabilities say what the endpoint is asked, as in containerd's
	// hosts.toml: pull (content by digest: blobs, manifests by digest)
	// and resolve (tags, tag lists, referrers). Default: both.
	Capabilities []string `yaml:"capabilities,omitempty"`
	// RepositoryPrefix goes in front of every repository name sent to
	// the endpoint ("dockerhub-proxy/": a Harbor proxy project).
	RepositoryPrefix string `yaml:"repository_prefix,omitempty"`
	// Credentials log in to this endpoint only.
	Credentials *Credentials `yaml:"credentials,omitempty"`
	// TLS is how the endpoint's certificate is checked, and the client
	// certificate presented to it.
	TLS *UpstreamTLS `yaml:"tls,omitempty"`
	// Proxy is the HTTP proxy requests to the endpoint go through
	// (http, https or socks5 URL). Default: HTTPS_PROXY, HTTP_PROXY and
	// NO_PROXY from the environment.
	Proxy string `yaml:"proxy,omitempty" secret:"userinfo"`
	// MaxConnections caps the requests in flight to the endpoint (a blob
	// download holds one until its body is read); default 64.
	MaxConnections int `yaml:"max_connections,omitempty"`
	// MaxRequestsPerSecond paces requests to the endpoint; 0: unlimited.
	MaxRequestsPerSecond float64 `yaml:"max_requests_per_second,omitempty"`
}

// Credentials are one way to log in to an upstream endpoint.
type Credentials struct {
	// Basic is a username and a file holding the password or token
	// (sent as basic auth, or exchanged for a bearer token).
	Basic *BasicCredentials `yaml:"basic,omitempty"`
	// Keychain asks the docker credential keychain (~/.docker/config.json
	// and its helpers) by the namespace's name.
	Keychain bool `yaml:"keychain,omitempty"`
	// Anonymous logs in as nobody: an endpoint's way to refuse the
	// namespace's credentials.
	Anonymous bool `yaml:"anonymous,omitempty"`
}

// BasicCredentials are a username and the file of its password.
type BasicCredentials struct {
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
}

// Set reports whether c logs in as someone.
func (c *Credentials) Set() bool { return c != nil && (c.Basic != nil || c.Keychain) }

// UpstreamTLS is how cairn checks an upstream endpoint's certificate and
// which client certificate it presents.
type UpstreamTLS struct {
	// CAFile holds PEM CA certificates trusted for the endpoint, added to
	// the system roots (blob downloads are often redirected to public
	// CDNs) unless SystemRoots is false.
	CAFile string `yaml:"ca_file,omitempty"`
	// CertFile and KeyFile are a client certificate (PEM) for endpoints
	// that require one. Both or neither.
	CertFile string `yaml:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file,omitempty"`
	// SystemRoots: trust the system's CAs too. Default true; false trusts
	// CAFile alone.
	SystemRoots *bool `yaml:"system_roots,omitempty"`
}

// Endpoint capabilities.
const (
	CapPull    = "pull"
	CapResolve = "resolve"
)

// Defaults of the endpoint fields.
const (
	DefaultEndpointMaxConnections = 64
	DefaultMaxHosts               = 64
	maxMaxHosts                   = 4096
	// HostPlaceholder in a wildcard namespace's URL is the matched host.
	HostPlaceholder = "{host}"
)

// Has reports whether the endpoint has capability c.
func (e Endpoint) Has(c string) bool { return slices.Contains(e.Capabilities, c) }

// Wildcard reports whether the namespace's name is a shape of hosts
// ("*.dkr.ecr.*.amazonaws.com") rather than one host.
func (u Upstream) Wildcard() bool { return strings.Contains(u.Name, "*") }

// namespaceCredentials is the namespace-level credentials: the
// credentials section, or the short form (username and password_file, or
// keychain).
func (u Upstream) namespaceCredentials() *Credentials {
	switch {
	case u.Credentials != nil:
		return u.Credentials
	case u.Keychain:
		return &Credentials{Keychain: true}
	case u.Username != "" || u.PasswordFile != "":
		return &Credentials{Basic: &BasicCredentials{Username: u.Username, PasswordFile: u.PasswordFile}}
	}
	return nil
}

// EffectiveEndpoints are the namespace's endpoints as requests use them:
// the short form (url) as one endpoint, and in each endpoint what it
// leaves empty taken from the namespace (credentials, repository_prefix,
// tls, proxy, max_connections, max_requests_per_second), then the
// defaults (capabilities pull and resolve, 64 connections, the system
// roots trusted). Nil for a hosted namespace. The config is not changed.
func (u Upstream) EffectiveEndpoints() []Endpoint {
	eps := slices.Clone(u.Endpoints)
	if len(eps) == 0 && u.URL != "" {
		eps = []Endpoint{{URL: u.URL}}
	}
	cred := u.namespaceCredentials()
	for i := range eps {
		e := &eps[i]
		if len(e.Capabilities) == 0 {
			e.Capabilities = []string{CapPull, CapResolve}
		}
		setString(&e.RepositoryPrefix, u.RepositoryPrefix)
		if e.Credentials == nil && cred != nil {
			c := *cred
			e.Credentials = &c
		}
		if e.TLS == nil && u.TLS != nil {
			t := *u.TLS
			e.TLS = &t
		}
		if e.TLS != nil && e.TLS.SystemRoots == nil {
			t := *e.TLS
			t.SystemRoots = ptr(true)
			e.TLS = &t
		}
		setString(&e.Proxy, u.Proxy)
		setInt(&e.MaxConnections, u.MaxConnections)
		setInt(&e.MaxConnections, DefaultEndpointMaxConnections)
		if e.MaxRequestsPerSecond == 0 {
			e.MaxRequestsPerSecond = u.MaxRequestsPerSecond
		}
	}
	return eps
}

// validateEndpoints checks the endpoint fields of a namespace (its own and
// each endpoint's), after ApplyDefaults.
func (u Upstream) validateEndpoints(at string, p *problems) {
	if u.URL != "" && len(u.Endpoints) > 0 {
		p.addf(at+".url", "with endpoints: use one, url is the short form of a single endpoint")
	}
	if u.Credentials != nil && (u.Username != "" || u.PasswordFile != "" || u.Keychain) {
		p.addf(at+".credentials", "with username, password_file or keychain: use one, those are its short form")
	}
	if len(u.Endpoints) > 0 {
		// Inherited by every endpoint, so checked once here; an
		// endpoint's own are checked with it.
		u.checkInherited(at, p)
	}
	if !u.Mirror() {
		for _, f := range []struct {
			name string
			set  bool
		}{{"credentials", u.Credentials != nil}, {"tls", u.TLS != nil}, {"proxy", u.Proxy != ""},
			{"repository_prefix", u.RepositoryPrefix != ""}, {"max_connections", u.MaxConnections != 0},
			{"max_requests_per_second", u.MaxRequestsPerSecond != 0}} {
			if f.set {
				p.addf(at+"."+f.name, "a hosted namespace (no url or endpoints) has no upstream to apply it to")
			}
		}
	}
	u.validateWildcard(at, p)
	for i, e := range u.Endpoints {
		e.validate(fmt.Sprintf("%s.endpoints[%d]", at, i), u.Wildcard(), p)
	}
	if len(u.Endpoints) == 0 && u.URL != "" {
		// The short form: its fields are the namespace's.
		short := Endpoint{URL: u.URL, RepositoryPrefix: u.RepositoryPrefix, Credentials: u.Credentials, TLS: u.TLS,
			Proxy: u.Proxy, MaxConnections: u.MaxConnections, MaxRequestsPerSecond: u.MaxRequestsPerSecond}
		short.validate(at, u.Wildcard(), p)
	}
	resolve, pull := false, false
	for _, e := range u.EffectiveEndpoints() {
		resolve = resolve || e.Has(CapResolve)
		pull = pull || e.Has(CapPull)
	}
	if len(u.Endpoints) > 0 && !resolve {
		p.addf(at+".endpoints", "no endpoint has the resolve capability: tags could never be resolved (give one capabilities: [pull, resolve])")
	}
	if len(u.Endpoints) > 0 && !pull {
		p.addf(at+".endpoints", "no endpoint has the pull capability: no content could be fetched (give one capabilities: [pull, resolve])")
	}
}

// checkInherited checks the namespace's endpoint defaults that no
// endpoint overrides (those that one does are checked with it).
func (u Upstream) checkInherited(at string, p *problems) {
	overrides := func(set func(Endpoint) bool) bool { return slices.ContainsFunc(u.Endpoints, set) }
	if u.Credentials != nil && !overrides(func(e Endpoint) bool { return e.Credentials == nil }) {
		u.Credentials.validate(at+".credentials", p)
	}
	if u.RepositoryPrefix != "" && !overrides(func(e Endpoint) bool { return e.RepositoryPrefix == "" }) {
		p.check(at+".repository_prefix", checkRepositoryPrefix(u.RepositoryPrefix))
	}
	if u.TLS != nil && !overrides(func(e Endpoint) bool { return e.TLS == nil }) {
		u.TLS.validate(at+".tls", p)
	}
	if u.Proxy != "" && !overrides(func(e Endpoint) bool { return e.Proxy == "" }) {
		p.check(at+".proxy", checkProxyURL(u.Proxy))
	}
	if u.MaxConnections < 0 && !overrides(func(e Endpoint) bool { return e.MaxConnections == 0 }) {
		p.addf(at+".max_connections", "must be >= 0 (0: the default, %d), got %d", DefaultEndpointMaxConnections, u.MaxConnections)
	}
	if u.MaxRequestsPerSecond < 0 && !overrides(func(e Endpoint) bool { return e.MaxRequestsPerSecond == 0 }) {
		p.addf(at+".max_requests_per_second", "must be >= 0 (0: unlimited), got %g", u.MaxRequestsPerSecond)
	}
}

func (e Endpoint) validate(at string, wildcard bool, p *problems) {
	raw := e.URL
	if wildcard {
		if !strings.Contains(raw, HostPlaceholder) {
			p.addf(at+".url", "%q: a wildcard namespace's url must hold %s, the host a request names", raw, HostPlaceholder)
		}
		raw = strings.ReplaceAll(raw, HostPlaceholder, "registry.example")
	} else if strings.Contains(raw, HostPlaceholder) {
		p.addf(at+".url", "%q: %s is only meaningful in a wildcard namespace (a name with *)", raw, HostPlaceholder)
	}
	p.check(at+".url", checkEndpointURL(raw))
	for j, c := range e.Capabilities {
		if c != CapPull && c != CapResolve {
			p.addf(fmt.Sprintf("%s.capabilities[%d]", at, j), "%q, want pull or resolve", c)
		}
	}
	if e.RepositoryPrefix != "" {
		p.check(at+".repository_prefix", checkRepositoryPrefix(e.RepositoryPrefix))
	}
	if e.Credentials != nil {
		e.Credentials.validate(at+".credentials", p)
	}
	if e.TLS != nil {
		e.TLS.validate(at+".tls", p)
		if strings.HasPrefix(strings.ToLower(e.URL), "http://") {
			p.addf(at+".tls", "set on an http:// endpoint, which does not use TLS")
		}
	}
	if e.Proxy != "" {
		p.check(at+".proxy", checkProxyURL(e.Proxy))
	}
	if e.MaxConnections < 0 {
		p.addf(at+".max_connections", "must be >= 0 (0: the default, %d), got %d", DefaultEndpointMaxConnections, e.MaxConnections)
	}
	if e.MaxRequestsPerSecond < 0 {
		p.addf(at+".max_requests_per_second", "must be >= 0 (0: unlimited), got %g", e.MaxRequestsPerSecond)
	}
}

func (c *Credentials) validate(at string, p *problems) {
	n := 0
	for _, set := range []bool{c.Basic != nil, c.Keychain, c.Anonymous} {
		if set {
			n++
		}
	}
	if n != 1 {
		p.addf(at, "want exactly one of basic, keychain and anonymous, got %d", n)
	}
	if b := c.Basic; b != nil {
		if b.Username == "" {
			p.addf(at+".basic.username", "empty")
		}
		if b.PasswordFile == "" {
			p.addf(at+".basic.password_file", "empty, want the file holding the password or token")
		} else {
			p.check(at+".basic.password_file", checkFile(b.PasswordFile))
		}
	}
}

func (t *UpstreamTLS) validate(at string, p *problems) {
	if t.CAFile != "" {
		p.check(at+".ca_file", checkFile(t.CAFile))
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		p.addf(at, "cert_file and key_file go together, got one")
	}
	for name, f := range map[string]string{"cert_file": t.CertFile, "key_file": t.KeyFile} {
		if f != "" {
			p.check(at+"."+name, checkFile(f))
		}
	}
	if t.SystemRoots != nil && !*t.SystemRoots && t.CAFile == "" {
		p.addf(at+".system_roots", "false without ca_file would trust no certificate at all")
	}
}

// validateWildcard checks a wildcard name ("*.dkr.ecr.*.amazonaws.com")
// and the fields only wildcards may have.
func (u Upstream) validateWildcard(at string, p *problems) {
	if !u.Wildcard() {
		if u.MaxHosts != 0 {
			p.addf(at+".max_hosts", "only a wildcard namespace (a name with *) has hosts to bound")
		}
		return
	}
	p.check(at+".name", route.CheckPattern(u.Name))
	if !u.Mirror() {
		p.addf(at+".url", "a wildcard namespace must mirror an upstream: set url (with %s) or endpoints", HostPlaceholder)
	}
	if len(u.Aliases) > 0 {
		p.addf(at+".aliases", "a wildcard namespace has no aliases: its name matches the hosts")
	}
	if u.Default {
		p.addf(at+".default", "a wildcard namespace cannot be the default: a request without a host would name no host")
	}
	if u.MaxHosts < 1 || u.MaxHosts > maxMaxHosts {
		p.addf(at+".max_hosts", "must be 1 to %d, got %d", maxMaxHosts, u.MaxHosts)
	}
}

// checkEndpointURL returns why raw is not an endpoint URL, or "": http or
// https, a host, maybe a path (the API's root, without /v2), no query,
// fragment or userinfo.
func checkEndpointURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Path == "" || u.Path == "/" {
		return checkURL(raw)
	}
	noPath := *u
	noPath.Path, noPath.RawPath = "", ""
	if msg := checkURL(noPath.String()); msg != "" {
		return msg
	}
	p := strings.TrimSuffix(u.Path, "/")
	if p == "/v2" || strings.HasSuffix(p, "/v2") || strings.Contains(p, "/v2/") {
		return fmt.Sprintf("%q: leave /v2 out of the path, cairn appends /v2/ to it", raw)
	}
	if strings.Contains(u.Path, "//") {
		return fmt.Sprintf("%q has an empty path segment", raw)
	}
	return ""
}

// checkRepositoryPrefix: one or more repository path components, ending
// in "/" ("dockerhub-proxy/").
func checkRepositoryPrefix(s string) string {
	name, ok := strings.CutSuffix(s, "/")
	if !ok || name == "" {
		return fmt.Sprintf("%q must end with /, like dockerhub-proxy/", s)
	}
	if err := route.ValidName(name); err != nil {
		return fmt.Sprintf("%q is not a repository path prefix: %v", s, err)
	}
	return ""
}

// checkProxyURL: http, https or socks5, a host and a port.
func checkProxyURL(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "not a URL (want like http://proxy.corp.example:3128)"
	case u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "socks5":
		return fmt.Sprintf("%q has scheme %q, want http, https or socks5", u.Redacted(), u.Scheme)
	case u.Hostname() == "":
		return fmt.Sprintf("%q has no host", u.Redacted())
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "":
		return fmt.Sprintf("%q: want only scheme://[user:password@]host:port", u.Redacted())
	}
	if _, port, err := net.SplitHostPort(u.Host); err != nil || !validPort(port, 1) {
		return fmt.Sprintf("%q needs a port, 1 to 65535", u.Redacted())
	}
	return ""
}
