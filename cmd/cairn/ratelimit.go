package main

import (
	"crypto/sha256"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/cairn-mirror/cairn/internal/ocierr"
)

// The login limits: after loginFailures failed credential checks within
// loginWindow from one client address, or for one user name, further
// checks for it are refused (429) until the window that began with its
// first failure ends. loginLimiterSize bounds the remembered addresses
// and names.
const (
	loginFailures    = 10
	loginWindow      = time.Minute
	loginLimiterSize = 10000
)

// loginLimiter counts failed credential checks per client address and per
// user name in fixed windows, so that a password guesser is refused before
// bcrypt runs. A check is counted when it begins and refunded when it
// succeeds: concurrent guesses cannot overrun the limit, and successful
// logins never count. Keys are hashes, so a long user name costs no more
// memory than a short one. Safe for concurrent use.
type loginLimiter struct {
	limit  int
	window time.Duration
	size   int
	now    func() time.Time

	mu        sync.Mutex
	counts    map[limitKey]*limitCount
	lastSweep time.Time
}

type limitKey [sha256.Size]byte

// limitCount is a key's checks in the window that began at start.
type limitCount struct {
	start time.Time
	n     int
}

// newLoginLimiter allows limit failures per window for each key,
// remembering at most size keys, on the clock now.
func newLoginLimiter(limit int, window time.Duration, size int, now func() time.Time) *loginLimiter {
	return &loginLimiter{limit: limit, window: window, size: size, now: now, counts: make(map[limitKey]*limitCount)}
}

// loginKeys are the limiter's keys of a check of user from r's client
// address (the host of r.RemoteAddr).
func loginKeys(r *http.Request, user string) []limitKey {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return []limitKey{sha256.Sum256([]byte("addr\x00" + host)), sha256.Sum256([]byte("user\x00" + user))}
}

// begin counts a check for keys, or refuses it with how long until the
// latest-ending blocked window ends.
func (l *loginLimiter) begin(keys []limitKey) (retry time.Duration, ok bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.maybeSweep(now)
	for _, k := range keys {
		if c := l.counts[k]; c != nil && now.Before(c.start.Add(l.window)) && c.n >= l.limit {
			retry = max(retry, c.start.Add(l.window).Sub(now))
		}
	}
	if retry > 0 {
		return retry, false
	}
	for _, k := range keys {
		l.count(k, now)
	}
	return 0, true
}

// count adds one check to k's current window, or starts a new one.
func (l *loginLimiter) count(k limitKey, now time.Time) {
	c := l.counts[k]
	if c != nil && now.Before(c.start.Add(l.window)) {
		c.n++
		return
	}
	if c != nil {
		c.start, c.n = now, 1
		return
	}
	if len(l.counts) >= l.size {
		l.sweep(now)
		if len(l.counts) >= l.size {
			l.evictOldest()
		}
	}
	l.counts[k] = &limitCount{start: now, n: 1}
}

// succeeded refunds the check begin counted for keys.
func (l *loginLimiter) succeeded(keys []limitKey) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		if c := l.counts[k]; c != nil && c.n > 0 {
			c.n--
		}
	}
}

// maybeSweep sweeps once a window, so that the map holds little more than
// the keys of the current window.
func (l *loginLimiter) maybeSweep(now time.Time) {
	if now.Sub(l.lastSweep) >= l.window {
		l.sweep(now)
	}
}

// sweep drops the keys whose window has ended.
func (l *loginLimiter) sweep(now time.Time) {
	l.lastSweep = now
	for k, c := range l.counts {
		if !now.Before(c.start.Add(l.window)) {
			delete(l.counts, k)
		}
	}
}

// evictOldest drops the key whose window began first: a full map of
// current windows forgets the one closest to ending.
func (l *loginLimiter) evictOldest() {
	var oldest limitKey
	var at time.Time
	for k, c := range l.counts {
		if at.IsZero() || c.start.Before(at) {
			oldest, at = k, c.start
		}
	}
	delete(l.counts, oldest)
}

// tooManyLogins refuses a credential check: TOOMANYREQUESTS, with when to
// come back (Retry-After, whole seconds, at least one).
type tooManyLogins struct{ retry time.Duration }

func (e tooManyLogins) Error() string {
	return fmt.Sprintf("too many failed logins from this address or for this user: retry in %s", e.RetryAfter())
}

func (e tooManyLogins) Unwrap() error { return ocierr.TooManyRequests }

// RetryAfter rounds up to whole seconds, at least one.
func (e tooManyLogins) RetryAfter() time.Duration {
	return max(time.Second, (e.retry + time.Second - 1).Truncate(time.Second))
}
