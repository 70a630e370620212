package cache

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/cairn-mirror/cairn/internal/breaker"
	"github.com/cairn-mirror/cairn/internal/route"
)

// wildcards keeps the live hosts of the wildcard namespaces: each host a
// request names becomes a namespace of its own (its name is the host), with
// its wildcard's settings and an upstream built for it, kept in a
// least-recently-used set of MaxHosts per wildcard. Dropping a host drops
// its upstream (connections, tokens), never what it cached: the next
// request for it builds a new one. Safe for concurrent use.
type wildcards struct {
	shapes     atomic.Pointer[[]*shape] // in the order New got them
	newBreaker func() *breaker.Breaker
}

type shape struct {
	tpl     *Namespace // the wildcard: its Name is the pattern
	pattern route.Pattern
	mu      sync.Mutex // serialises building a host's upstream
	hosts   *lru.Cache[string, *Namespace]
}

func newWildcards(nss map[string]*Namespace, newBreaker func() *breaker.Breaker) (*wildcards, error) {
	w := &wildcards{newBreaker: newBreaker}
	return w, w.set(nss)
}

// set installs the wildcards among nss, with no host live: after a reload
// every host gets a fresh upstream from the new settings.
func (w *wildcards) set(nss map[string]*Namespace) error {
	var shapes []*shape
	for _, ns := range nss {
		if ns.ForHost == nil {
			continue
		}
		p, err := route.ParsePattern(ns.Name)
		if err != nil {
			return fmt.Errorf("cache: wildcard namespace %q: %w", ns.Name, err)
		}
		if ns.MaxHosts < 1 || ns.Origin != nil {
			return fmt.Errorf("cache: wildcard namespace %q: want max hosts >= 1 and no origin of its own", ns.Name)
		}
		hosts, err := lru.NewWithEvict(ns.MaxHosts, func(_ string, h *Namespace) { closeIdle(h.Origin) })
		if err != nil {
			return err
		}
		shapes = append(shapes, &shape{tpl: ns, pattern: p, hosts: hosts})
	}
	// Map order is random: a host two wildcards match must always go to
	// the same one, the first by name.
	slices.SortFunc(shapes, func(a, b *shape) int { return strings.Compare(a.tpl.Name, b.tpl.Name) })
	if old := w.shapes.Swap(&shapes); old != nil {
		for _, s := range *old {
			s.hosts.Purge()
		}
	}
	return nil
}

// namespace returns host's namespace if a wildcard matches it, building
// its upstream on first use; nil and no error if none matches.
func (w *wildcards) namespace(host string) (*Namespace, error) {
	for _, s := range *w.shapes.Load() {
		if !s.pattern.Match(host) {
			continue
		}
		if ns, ok := s.hosts.Get(host); ok {
			return ns, nil
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if ns, ok := s.hosts.Get(host); ok {
			return ns, nil
		}
		origin, err := s.tpl.ForHost(host)
		if err != nil {
			return nil, fmt.Errorf("cache: upstream of %s (wildcard %s): %w", host, s.tpl.Name, err)
		}
		ns := *s.tpl
		ns.Name, ns.Shape, ns.Origin, ns.ForHost = host, s.tpl.Name, origin, nil
		ns.breaker = w.newBreaker()
		s.hosts.Add(host, &ns)
		return &ns, nil
	}
	return nil, nil
}

// live counts the live hosts of each wildcard (for tests and stats).
func (w *wildcards) live() map[string]int {
	out := map[string]int{}
	for _, s := range *w.shapes.Load() {
		out[s.tpl.Name] = s.hosts.Len()
	}
	return out
}

// closeIdle closes a dropped upstream's idle connections, if it can.
func closeIdle(o Origin) {
	if c, ok := o.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
