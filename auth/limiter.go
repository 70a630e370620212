package auth

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"

	"github.com/cairn-mirror/cairn/internal/ocierr"
)

// The defaults of NewLoginLimiter's options.
const (
	// DefaultPairFailures failed checks of one user name from one client
	// address (an IPv6 client by its /64) within DefaultLoginWindow block
	// that pair until the window ends: a typo or two never, a guesser soon.
	DefaultPairFailures = 10
	// DefaultAddrFailures failed checks from one client address, whatever
	// the user names, block the address for users who have not logged in
	// from it lately. It is higher than the pair limit: several people
	// behind one NAT mistype too.
	DefaultAddrFailures = 30
	// DefaultLoginWindow is the window failures are counted in.
	DefaultLoginWindow = time.Minute
	// DefaultTrustFor is how long a success from an address keeps that
	// user and address clear of the address's block: a guesser sharing the
	// real user's NAT cannot lock them out.
	DefaultTrustFor = time.Hour
	// DefaultLimiterSize bounds each of the limiter's two memories (counts,
	// and recent successes), least recently used first out.
	DefaultLimiterSize = 10000
)

// LoginLimiter limits password guessing without locking people out. It
// counts failed credential checks per (user, client address) and per
// client address, in fixed windows that begin with a key's first failure.
// A check is counted when it begins and refunded when it succeeds, so that
// concurrent guesses cannot overrun a limit and successes never count.
//
// Failures from other addresses never block a user: there is no per-user
// count. A (user, address) that logged in successfully within the trust
// period is not blocked by the address's count either, only by its own.
//
// Memory is bounded by two LRU caches of fixed size whose entries expire;
// every call is O(1). Keys are hashes, so a long user name costs no more
// than a short one. Safe for concurrent use.
type LoginLimiter struct {
	pairLimit, addrLimit int
	window, trustFor     time.Duration
	now                  func() time.Time
	size                 int

	mu      sync.Mutex // makes each check-and-count atomic
	counts  *expirable.LRU[limitKey, limitCount]
	trusted *expirable.LRU[limitKey, time.Time] // pair -> its last success
}

type limitKey [sha256.Size]byte

// limitCount is a key's checks in the window that began at start.
type limitCount struct {
	start time.Time
	n     int
}

// LimiterOption configures NewLoginLimiter.
type LimiterOption func(*LoginLimiter)

// WithLimits sets the failures allowed per (user, address) and per
// address in each window.
func WithLimits(pair, addr int, window time.Duration) LimiterOption {
	return func(l *LoginLimiter) { l.pairLimit, l.addrLimit, l.window = pair, addr, window }
}

// WithTrustFor sets how long a success exempts its (user, address) from
// the address's block.
func WithTrustFor(d time.Duration) LimiterOption { return func(l *LoginLimiter) { l.trustFor = d } }

// WithLimiterClock sets the clock windows and trust are measured by
// (default time.Now). Entries also leave memory after their window or
// trust period by the wall clock.
func WithLimiterClock(now func() time.Time) LimiterOption {
	return func(l *LoginLimiter) { l.now = now }
}

// WithLimiterSize sets how many keys each of the two memories holds
// (default DefaultLimiterSize).
func WithLimiterSize(n int) LimiterOption { return func(l *LoginLimiter) { l.size = n } }

// NewLoginLimiter returns a limiter with the Default* limits.
func NewLoginLimiter(opts ...LimiterOption) (*LoginLimiter, error) {
	l := &LoginLimiter{
		pairLimit: DefaultPairFailures, addrLimit: DefaultAddrFailures,
		window: DefaultLoginWindow, trustFor: DefaultTrustFor, now: time.Now,
		size: DefaultLimiterSize,
	}
	for _, o := range opts {
		o(l)
	}
	switch {
	case l.pairLimit <= 0 || l.addrLimit <= 0:
		return nil, errors.New("auth: login limits must be > 0")
	case l.window <= 0 || l.trustFor <= 0:
		return nil, errors.New("auth: login window and trust period must be > 0")
	case l.now == nil:
		return nil, errors.New("auth: nil clock")
	case l.size <= 0:
		return nil, errors.New("auth: login limiter size must be > 0")
	}
	l.counts = expirable.NewLRU[limitKey, limitCount](l.size, nil, l.window)
	l.trusted = expirable.NewLRU[limitKey, time.Time](l.size, nil, l.trustFor)
	return l, nil
}

// ClientNet is the part of a client's address the limiter counts by: the
// whole address for IPv4 (IPv4-mapped IPv6 included), the /64 for IPv6,
// where one host is given a /64 and can rotate inside it.
func ClientNet(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	if a.Is4() || !a.IsValid() {
		return netip.PrefixFrom(a, a.BitLen())
	}
	p, _ := a.Prefix(64) // a valid IPv6 address always has a /64
	return p
}

func pairKey(user string, n netip.Prefix) limitKey {
	return sha256.Sum256([]byte("pair\x00" + n.String() + "\x00" + user))
}

func addrKey(n netip.Prefix) limitKey { return sha256.Sum256([]byte("addr\x00" + n.String())) }

// Begin counts a check of user's credentials from addr, or refuses it with
// how long until the blocking window ends. A refused check is not counted.
func (l *LoginLimiter) Begin(user string, addr netip.Addr) (retry time.Duration, ok bool) {
	n := ClientNet(addr)
	pair, address := pairKey(user, n), addrKey(n)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	retry = l.blocked(pair, l.pairLimit, now)
	if last, ok := l.trusted.Get(pair); !ok || now.Sub(last) >= l.trustFor {
		retry = max(retry, l.blocked(address, l.addrLimit, now))
	}
	if retry > 0 {
		return retry, false
	}
	l.count(pair, now)
	l.count(address, now)
	return 0, true
}

// blocked is how long k's window has left if k is at limit, else 0.
func (l *LoginLimiter) blocked(k limitKey, limit int, now time.Time) time.Duration {
	c, ok := l.counts.Get(k)
	if !ok || c.n < limit {
		return 0
	}
	return max(0, c.start.Add(l.window).Sub(now))
}

// count adds one check to k's current window, or starts a new one.
func (l *LoginLimiter) count(k limitKey, now time.Time) {
	c, ok := l.counts.Get(k)
	if !ok || !now.Before(c.start.Add(l.window)) {
		c = limitCount{start: now}
	}
	c.n++
	l.counts.Add(k, c)
}

// Succeeded refunds the check Begin counted for user from addr, and trusts
// that pair for the trust period.
func (l *LoginLimiter) Succeeded(user string, addr netip.Addr) {
	n := ClientNet(addr)
	pair := pairKey(user, n)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range []limitKey{pair, addrKey(n)} {
		if c, ok := l.counts.Peek(k); ok && c.n > 0 {
			c.n--
			l.counts.Add(k, c)
		}
	}
	l.trusted.Add(pair, now)
}

// tooManyLogins refuses a credential check the limiter blocked:
// TOOMANYREQUESTS, with when to come back (RetryAfter, which the
// registry's error renderer and the token endpoint send as Retry-After).
type tooManyLogins struct{ retry time.Duration }

func (e tooManyLogins) Error() string {
	return fmt.Sprintf("too many failed logins from this address: retry in %s", e.RetryAfter())
}

func (e tooManyLogins) Unwrap() error { return ocierr.TooManyRequests }

// RetryAfter rounds up to whole seconds, at least one.
func (e tooManyLogins) RetryAfter() time.Duration {
	return max(time.Second, (e.retry + time.Second - 1).Truncate(time.Second))
}
