package cache

import (
	"errors"
	"fmt"
	"maps"
	"slices"
)

// Namespaces returns the namespaces' current settings, sorted by name.
func (c *Cache) Namespaces() []Namespace {
	live := *c.live.Load()
	out := make([]Namespace, 0, len(live))
	for _, name := range slices.Sorted(maps.Keys(live)) {
		out = append(out, *live[name])
	}
	return out
}

// UpdateNamespaces replaces the settings of every namespace at once (a
// config reload): its upstream (Origin), tag TTL, serve-stale choices and
// timeouts. nss must name exactly the namespaces New got, each with the
// same Private and an upstream if and only if it had one: what a
// namespace is cannot change while the cache runs. On error nothing
// changes, and the error lists every problem.
//
// Safe to call while requests run. A request reads its namespace once and
// keeps those settings to its end; a fill in flight keeps the idle timeout
// it started with.
func (c *Cache) UpdateNamespaces(nss []Namespace) error {
	next := make(map[string]*Namespace, len(nss))
	var errs []error
	for i := range nss {
		ns := nss[i]
		if err := c.checkUpdate(ns); err != nil {
			errs = append(errs, err)
		}
		if _, dup := next[ns.Name]; dup {
			errs = append(errs, fmt.Errorf("cache: namespace %q given twice", ns.Name))
		}
		next[ns.Name] = &ns
	}
	for name := range c.nss {
		if _, ok := next[name]; !ok {
			errs = append(errs, fmt.Errorf("cache: namespace %q missing: namespaces cannot be removed while the cache runs", name))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := c.hosts.set(next); err != nil {
		return err
	}
	c.live.Store(&next)
	return nil
}

// checkUpdate says why ns cannot replace the namespace of its name.
func (c *Cache) checkUpdate(ns Namespace) error {
	was, ok := c.nss[ns.Name]
	switch {
	case !ok:
		return fmt.Errorf("cache: namespace %q is not configured: namespaces cannot be added while the cache runs", ns.Name)
	case ns.TagTTL <= 0 || ns.FillIdleTimeout <= 0:
		return fmt.Errorf("cache: namespace %q: tag TTL and fill idle timeout are required", ns.Name)
	case ns.Private != was.Private:
		return fmt.Errorf("cache: namespace %q: whether it uses credentials cannot change while the cache runs (its repositories' links depend on it)", ns.Name)
	case (ns.ForHost == nil) != (was.ForHost == nil):
		return fmt.Errorf("cache: namespace %q: whether it is a wildcard cannot change while the cache runs", ns.Name)
	case (ns.Origin == nil) != (was.Origin == nil):
		return fmt.Errorf("cache: namespace %q: a mirror cannot become hosted, nor a hosted namespace a mirror, while the cache runs", ns.Name)
	}
	return nil
}
