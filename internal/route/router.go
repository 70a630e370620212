package route

import (
	"fmt"
	"strings"

	"github.com/cairn-mirror/cairn/internal/ocierr"
)

// Namespace is what the router needs to know of a configured namespace.
type Namespace struct {
	Name          string   // host-like, lowercase: "docker.io"
	Aliases       []string // other host names for it: "index.docker.io"
	LibraryPrefix bool     // one-component names get "library/"
	Default       bool     // used when neither ?ns= nor a leading host names one
	Mirror        bool     // has an upstream: writes into it are replication, not pushes
}

// Repo is a repository resolved to its namespace.
type Repo struct {
	Namespace string // the namespace's configured name
	Name      string // the repository inside the namespace: "library/alpine"
	Sent      string // the name as the client sent it, for Location and Link headers
}

// Canonical is the name cairn keys everything by: "docker.io/library/alpine".
func (r Repo) Canonical() string { return r.Namespace + "/" + r.Name }

// Router maps client names to namespaces. It is immutable after NewRouter
// and safe for concurrent use.
type Router struct {
	byHost map[string]*Namespace // names and aliases, lowercase
	def    *Namespace
}

// NewRouter checks the namespaces (host-like names, no duplicate names or
// aliases, at most one default) and returns a router over them.
func NewRouter(nss []Namespace) (*Router, error) {
	r := &Router{byHost: make(map[string]*Namespace)}
	for i := range nss {
		ns := &nss[i]
		if ns.Default {
			if r.def != nil {
				return nil, fmt.Errorf("namespaces %q and %q are both the default", r.def.Name, ns.Name)
			}
			r.def = ns
		}
		for _, h := range append([]string{ns.Name}, ns.Aliases...) {
			h = strings.ToLower(h)
			if !ValidHost(h) {
				return nil, fmt.Errorf("namespace host %q is not a registry host name", h)
			}
			if _, dup := r.byHost[h]; dup {
				return nil, fmt.Errorf("namespace host %q is configured twice", h)
			}
			r.byHost[h] = ns
		}
	}
	return r, nil
}

// Mirror reports whether the namespace named namespace (its configured
// name, as in Repo.Namespace) mirrors an upstream; false for a hosted or
// unknown one.
func (r *Router) Mirror(namespace string) bool {
	ns, ok := r.byHost[namespace]
	return ok && ns.Name == namespace && ns.Mirror
}

// Resolve maps a validated name (see ParsePath) and the request's ?ns=
// value to a repository. A host that is not configured wraps
// ocierr.NameUnknown: cairn is never an open proxy.
func (r *Router) Resolve(name, nsParam string) (Repo, error) {
	ns, repo, err := r.pick(name, nsParam)
	if err != nil {
		return Repo{}, err
	}
	return Repo{Namespace: ns.Name, Name: ns.repoName(repo), Sent: name}, nil
}

// repoName is the name of repository repo inside ns: with library/ before
// a one-component name where ns adds it (library_prefix).
func (ns *Namespace) repoName(repo string) string {
	if ns.LibraryPrefix && !strings.Contains(repo, "/") {
		return "library/" + repo
	}
	return repo
}

func (r *Router) pick(name, nsParam string) (*Namespace, string, error) {
	if nsParam != "" {
		ns, ok := r.byHost[strings.ToLower(nsParam)]
		if !ok {
			return nil, "", fmt.Errorf("registry %q is not configured on this mirror: %w", nsParam, ocierr.NameUnknown)
		}
		return ns, name, nil
	}
	if first, rest, ok := strings.Cut(name, "/"); ok && IsHostLike(first) {
		ns, ok := r.byHost[first]
		if !ok {
			return nil, "", fmt.Errorf("registry %q is not configured on this mirror: %w", first, ocierr.NameUnknown)
		}
		return ns, rest, nil
	}
	if r.def == nil {
		return nil, "", fmt.Errorf("no default namespace for %q: name a registry with ?ns= or a leading host: %w", name, ocierr.NameUnknown)
	}
	return r.def, name, nil
}
