package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/internal/route"
	"github.com/cairn-mirror/cairn/storage"
)

// WithPins sets the pin rules from the config (see ParsePinRule), and the
// platforms ("linux/amd64") whose index children an exact pin fetches
// ahead (none: all of them).
func WithPins(rules []route.PinRule, platforms ...string) Option {
	return func(c *Cache) { c.pins, c.pinPlatforms = rules, platforms }
}

// Pin pins the image ref names (canonical, as in a PinRule) and everything
// it references, under reason, and fetches what of it is missing: the
// manifest, the children of pin_platforms (all without them), every
// config and layer (FetchImage). The pin holds before the fetch starts,
// so nothing fetched can be evicted before it is pinned; a fetch that
// fails leaves the pin in place (KeepPins does not retry it: call again).
func (c *Cache) Pin(ctx context.Context, ref, reason string) error {
	repo, dgst, err := c.resolveRef(ctx, ref, true)
	if err != nil {
		return err
	}
	if err := c.pinClosure(dgst, reason); err != nil {
		return err
	}
	if err := c.FetchImage(ctx, repo, dgst, ImageOptions{Platforms: c.pinPlatforms}); err != nil {
		return fmt.Errorf("pinned, but not whole: %w", err)
	}
	return c.pinClosure(dgst, reason)
}

// Unpin drops reason from ref's image and everything it references.
func (c *Cache) Unpin(ctx context.Context, ref, reason string) error {
	_, dgst, err := c.resolveRef(ctx, ref, false)
	if err != nil {
		return err
	}
	closure, err := c.store.Closure(dgst)
	if err != nil {
		return err
	}
	for _, d := range closure {
		if err := c.store.Unpin(d, reason); err != nil {
			return err
		}
	}
	return nil
}

// resolveRef turns "<ns>/<repo>:<tag>" or "...@<digest>" into a digest,
// from the tag record, or (fetch) from the upstream.
func (c *Cache) resolveRef(ctx context.Context, ref string, fetch bool) (route.Repo, string, error) {
	rule, err := route.ParsePinRule(ref)
	if err != nil || rule.Ref == "" {
		return route.Repo{}, "", fmt.Errorf("pin %q: want one image, <namespace>/<repo>:<tag> or @<digest>: %w", ref, ocierr.NameInvalid)
	}
	ns, name, _ := strings.Cut(rule.Repo, "/")
	repo := route.Repo{Namespace: ns, Name: name, Sent: rule.Repo}
	if route.IsDigest(rule.Ref) && !fetch {
		return repo, rule.Ref, nil
	}
	if !fetch {
		rec, err := c.store.Tag(ns, name, rule.Ref)
		return repo, rec.Digest, err
	}
	m, err := c.Manifest(ctx, repo, rule.Ref, nil)
	return repo, m.Digest, err
}

// pinClosure pins dgst and everything the manifest graph says it holds.
// It repeats until the closure stops growing: a child manifest committed
// meanwhile (its inheritPins saw no pin yet) has its own refs pinned too.
func (c *Cache) pinClosure(dgst, reason string) error {
	pinned := map[string]bool{}
	for {
		closure, err := c.store.Closure(dgst)
		if err != nil {
			return err
		}
		grew := false
		for _, d := range closure {
			if pinned[d] {
				continue
			}
			if err := c.store.Pin(d, reason); err != nil {
				return err
			}
			pinned[d], grew = true, true
		}
		if !grew {
			return nil
		}
	}
}

// inheritPins runs after a manifest is committed: if it is pinned (it was
// named by a pinned index before it arrived), what it names is pinned too.
func (c *Cache) inheritPins(dgst string) {
	reasons, err := c.store.PinReasons(dgst)
	for _, r := range reasons {
		if err == nil {
			err = c.pinClosure(dgst, r)
		}
	}
	if err != nil {
		c.log.Warn("pinning what a pinned manifest names", "digest", dgst, "err", err)
	}
}

// rulePrefix starts the pin reasons of config rules.
const rulePrefix = "config:"

// pinByRules pins a tag just written if a rule covers it, and releases
// what that rule no longer covers (the tag's previous image).
func (c *Cache) pinByRules(repo route.Repo, tag, dgst string) {
	for _, r := range c.pins {
		if !r.Matches(repo.Canonical(), tag) {
			continue
		}
		err := c.pinClosure(dgst, rulePrefix+r.Raw)
		if err == nil {
			err = c.sweepPins(map[string]route.PinRule{rulePrefix + r.Raw: r})
		}
		if err != nil {
			c.log.Warn("pinning by rule", "rule", r.Raw, "err", err)
		}
	}
}

// sweepPins unpins, for each rule reason given, every digest outside the
// closures of the tags the rule covers now (a tag that moved leaves its
// old image unpinned). Shared layers stay pinned while any covered image
// names them.
func (c *Cache) sweepPins(rules map[string]route.PinRule) error {
	keep, err := c.coveredByRules(rules)
	if err != nil {
		return err
	}
	return c.unpinWhere(func(d, reason string) bool {
		_, ruled := rules[reason]
		return ruled && !keep[reason][d]
	})
}

// unpinWhere drops every pin drop selects (listed first, then unpinned:
// EachPin's callback must not write).
func (c *Cache) unpinWhere(drop func(digest, reason string) bool) error {
	var pins [][2]string
	err := c.store.EachPin(func(d, reason string) error {
		if drop(d, reason) {
			pins = append(pins, [2]string{d, reason})
		}
		return nil
	})
	for _, p := range pins {
		if err == nil {
			err = c.store.Unpin(p[0], p[1])
		}
	}
	return err
}

// coveredByRules: per rule reason, the digests of the images its tags name.
func (c *Cache) coveredByRules(rules map[string]route.PinRule) (map[string]map[string]bool, error) {
	type hit struct{ reason, digest string }
	var hits []hit
	err := c.store.EachTag(func(ns, repo, tag string, rec storage.TagRecord) error {
		for reason, r := range rules {
			if r.Matches(ns+"/"+repo, tag) {
				hits = append(hits, hit{reason, rec.Digest})
			}
		}
		return nil
	})
	keep := make(map[string]map[string]bool, len(rules))
	for reason := range rules {
		keep[reason] = map[string]bool{}
	}
	for _, h := range hits {
		closure, cerr := c.store.Closure(h.digest)
		for _, d := range closure {
			keep[h.reason][d] = true
		}
		err = errors.Join(err, cerr)
	}
	return keep, err
}

// dropStaleRules unpins reasons of rules no longer in the config.
func (c *Cache) dropStaleRules() error {
	configured := map[string]bool{}
	for _, r := range c.pins {
		configured[rulePrefix+r.Raw] = true
	}
	return c.unpinWhere(func(_, reason string) bool {
		return strings.HasPrefix(reason, rulePrefix) && !configured[reason]
	})
}

// applyPins pins what the rules cover among cached tags, and fetches the
// images exact rules name, all platforms, so an offline site has them. It
// reports whether everything is in place (else Run tries again later).
func (c *Cache) applyPins(ctx context.Context) bool {
	if err := c.dropStaleRules(); err != nil {
		c.log.Warn("dropping pins of rules no longer configured", "err", err)
	}
	if len(c.pins) == 0 {
		return true
	}
	type hit struct{ repo, tag, digest string }
	var hits []hit
	_ = c.store.EachTag(func(ns, repo, tag string, rec storage.TagRecord) error {
		hits = append(hits, hit{ns + "/" + repo, tag, rec.Digest})
		return nil
	})
	rules := make(map[string]route.PinRule, len(c.pins))
	for _, r := range c.pins {
		rules[rulePrefix+r.Raw] = r
		for _, h := range hits {
			if r.Matches(h.repo, h.tag) {
				if err := c.pinClosure(h.digest, rulePrefix+r.Raw); err != nil {
					c.log.Warn("pinning by rule", "rule", r.Raw, "err", err)
				}
			}
		}
	}
	if err := c.sweepPins(rules); err != nil { // one pass for all rules
		c.log.Warn("releasing pins rules no longer cover", "err", err)
	}
	done := true
	for _, r := range c.pins {
		if r.Ref == "" {
			continue
		}
		if err := c.prefetch(ctx, r); err != nil {
			c.log.Info("pinned image not complete yet", "rule", r.Raw, "err", err)
			done = false
		}
	}
	return done
}

// prefetch pins and fetches an exact rule's image whole: the manifest,
// the children of pin_platforms, every blob.
func (c *Cache) prefetch(ctx context.Context, r route.PinRule) error {
	repo, dgst, err := c.resolveRef(ctx, r.Raw, true)
	if err != nil {
		return err
	}
	if err := c.pinClosure(dgst, rulePrefix+r.Raw); err != nil {
		return err
	}
	err = c.FetchImage(ctx, repo, dgst, ImageOptions{Platforms: c.pinPlatforms})
	if err == nil {
		err = c.pinClosure(dgst, rulePrefix+r.Raw) // what arrived meanwhile
	}
	return err
}

// fetchBlob makes sure dgst is stored, reading it through a fill if not.
func (c *Cache) fetchBlob(ctx context.Context, repo route.Repo, dgst string) error {
	if _, err := c.store.Stat(dgst); err == nil {
		return nil
	}
	b, err := c.OpenBlob(ctx, repo, dgst)
	if err != nil {
		return err
	}
	defer b.Close()
	if _, err := b.WriteRange(ctx, io.Discard, 0, b.Size()); err != nil {
		return err
	}
	// A reader is done once the bytes match; the caller wants them stored.
	if r, ok := b.(*follower); ok {
		if err := r.settled(ctx); err != nil {
			return err
		}
	}
	// A read that went uncached (a full disk) stored nothing: the image is
	// not whole, and the caller may try again later.
	if _, err := c.store.Stat(dgst); err != nil {
		return fmt.Errorf("%s read but not stored: %w", dgst, err)
	}
	return nil
}

// KeepPins applies the pin rules at start, fetching the images exact rules
// name, and tries again every pinRetry until all are in place (the
// upstream may be down at start). It returns when done or when ctx ends.
func (c *Cache) KeepPins(ctx context.Context) error {
	retry := time.NewTicker(pinRetry)
	defer retry.Stop()
	for !c.applyPins(ctx) {
		select {
		case <-ctx.Done():
			return nil
		case <-retry.C:
		}
	}
	return nil
}
