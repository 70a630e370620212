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
	// Wildcard: Name is a Pattern, and each host it matches is a
	// namespace of that name (see Pattern). No aliases, never the default.
	Wildcard bool
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
	shapes []shape // wildcard namespaces, in config order
}

// shape is a wildcard namespace with its parsed pattern.
type shape struct {
	ns      *Namespace
	pattern Pattern
}

// NewRouter checks the namespaces (host-like names, no duplicate names or
// aliases, at most one default) and returns a router over them.
func NewRouter(nss []Namespace) (*Router, error) {
	r := &Router{byHost: make(map[string]*Namespace)}
	for i := range nss {
		ns := &nss[i]
		if ns.Wildcard {
			p, err := ParsePattern(ns.Name)
			if err != nil {
				return nil, fmt.Errorf("namespace %q: %w", ns.Name, err)
			}
			if ns.Default || len(ns.Aliases) > 0 {
				return nil, fmt.Errorf("wildcard namespace %q can have no aliases and cannot be the default", ns.Name)
			}
			r.shapes = append(r.shapes, shape{ns: ns, pattern: p})
			continue
		}
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
	if ns, ok := r.byHost[namespace]; ok {
		return ns.Name == namespace && ns.Mirror
	}
	_, ok := r.Shape(namespace)
	return ok
}

// Shape returns the name of the wildcard namespace host belongs to, if
// host is configured through a wildcard (and not by its own name).
func (r *Router) Shape(host string) (string, bool) {
	if _, ok := r.byHost[host]; ok {
		return "", false
	}
	for _, s := range r.shapes {
		if s.pattern.Match(host) {
			return s.ns.Name, true
		}
	}
	return "", false
}

// lookup finds the namespace of a lowercase host: configured by name or
// alias, or a host of a wildcard namespace's shape (a namespace named
// host, with the wildcard's settings).
func (r *Router) lookup(host string) (*Namespace, bool) {
	if ns, ok := r.byHost[host]; ok {
		return ns, true
	}
	for _, s := range r.shapes {
		if s.pattern.Match(host) {
			ns := *s.ns
			ns.Name = host
			return &ns, true
		}
	}
	return nil, false
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
		ns, ok := r.lookup(strings.ToLower(nsParam))
		if !ok {
			return nil, "", fmt.Errorf("registry %q is not configured on this mirror: %w", nsParam, ocierr.NameUnknown)
		}
		return ns, name, nil
	}
	if first, rest, ok := strings.Cut(name, "/"); ok && IsHostLike(first) {
		ns, ok := r.lookup(first)
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
