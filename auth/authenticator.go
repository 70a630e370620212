package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/crypto/bcrypt"
)

// The defaults of NewAuthenticator's options.
const (
	// DefaultCacheTTL: clients send Basic credentials with every request and
	// a bcrypt check costs milliseconds of CPU, so a success is remembered
	// for a minute. The Authenticator is rebuilt when the htpasswd file
	// changes; the TTL bounds how long a success lives in memory.
	DefaultCacheTTL = time.Minute

	// DefaultCacheSize bounds the remembered successes, least recently used
	// first out. Only right passwords are remembered, one per user while
	// the file is unchanged: more than the users of most htpasswd files.
	DefaultCacheSize = 1024
)

// dummyTail is the salt and checksum of a real bcrypt hash (of a password
// nobody uses). Put behind "$2a$NN$" it makes a well-formed hash of any cost
// NN that no password matches, to check unknown users against.
const dummyTail = "dpJWCiq1vZaA/bp/9Sy3zujHUIr2oCiixYK4he8VfZdQaxnGNRb0S"

// Authenticator checks user names and passwords against an htpasswd file.
// It is safe for concurrent use.
type Authenticator struct {
	users *Htpasswd
	dummy []byte // checked for unknown users, so they cost one bcrypt too
	key   []byte // HMAC key of the remembered successes, random per instance
	ttl   time.Duration
	now   func() time.Time
	// cache maps the HMAC of a user and password that checked out to when
	// that success expires; nil when nothing is remembered.
	cache   *lru.Cache[[sha256.Size]byte, time.Time]
	compare func(hash, password []byte) error
}

// Option configures NewAuthenticator.
type Option func(*options)

type options struct {
	ttl  time.Duration
	size int
	now  func() time.Time
}

// WithCacheTTL sets how long a successful check is remembered (default
// DefaultCacheTTL); 0 remembers nothing.
func WithCacheTTL(d time.Duration) Option { return func(o *options) { o.ttl = d } }

// WithCacheSize sets how many users' successful checks are remembered at
// most (default DefaultCacheSize); 0 remembers nothing.
func WithCacheSize(n int) Option { return func(o *options) { o.size = n } }

// WithClock sets the clock the remembered successes expire by (default
// time.Now).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// NewAuthenticator returns an Authenticator for the users of h.
//
// An unknown user is checked against a dummy hash of the bcrypt cost most of
// h's entries use, so that it takes as long as a wrong password. Keep one
// cost in the file (htpasswd -B -C N for every entry): an entry of another
// cost takes a different time to check, which tells it apart from an
// unknown user.
func NewAuthenticator(h *Htpasswd, opts ...Option) (*Authenticator, error) {
	if h == nil {
		return nil, errors.New("auth: NewAuthenticator: nil htpasswd")
	}
	o := options{ttl: DefaultCacheTTL, size: DefaultCacheSize, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case o.ttl < 0:
		return nil, fmt.Errorf("auth: cache TTL %v is negative", o.ttl)
	case o.size < 0:
		return nil, fmt.Errorf("auth: cache size %d is negative", o.size)
	case o.now == nil:
		return nil, errors.New("auth: nil clock")
	}
	a := &Authenticator{
		users:   h,
		dummy:   dummyHash(h.commonCost()),
		key:     make([]byte, 32),
		ttl:     o.ttl,
		now:     o.now,
		compare: bcrypt.CompareHashAndPassword,
	}
	rand.Read(a.key) // never fails (crypto/rand, Go 1.24+)
	if o.ttl > 0 && o.size > 0 {
		c, err := lru.New[[sha256.Size]byte, time.Time](o.size)
		if err != nil {
			return nil, fmt.Errorf("auth: cache: %w", err)
		}
		a.cache = c
	}
	return a, nil
}

// dummyHash is a well-formed bcrypt hash of the given cost that no password
// matches: checking it costs as much as checking a real entry of that cost.
func dummyHash(cost int) []byte {
	return fmt.Appendf(nil, "$2a$%02d$%s", cost, dummyTail)
}

// Check reports whether password is user's password. A success is
// remembered for the cache TTL; a failure never is, so every failure costs
// one bcrypt check, whether the user is unknown or the password wrong.
func (a *Authenticator) Check(user, password string) bool {
	mac := a.mac(user, password)
	if a.remembered(mac) {
		return true
	}
	e, known := a.users.users[user]
	hash := e.hash
	if !known {
		hash = a.dummy
	}
	if err := a.compare(hash, []byte(password)); err != nil || !known {
		return false
	}
	if a.cache != nil {
		a.cache.Add(mac, a.now().Add(a.ttl))
	}
	return true
}

// mac is HMAC-SHA-256 of the user's length, the user and the password: the
// length keeps ("a", "b:c") and ("a:b", "c") apart, whatever bytes they hold.
func (a *Authenticator) mac(user, password string) [sha256.Size]byte {
	m := hmac.New(sha256.New, a.key)
	m.Write(binary.BigEndian.AppendUint64(nil, uint64(len(user))))
	m.Write([]byte(user))
	m.Write([]byte(password))
	var sum [sha256.Size]byte
	m.Sum(sum[:0])
	return sum
}

// remembered reports whether the user and password whose HMAC is mac were
// checked successfully within the TTL.
//
// The cache is keyed by the MAC alone, not by the user: a wrong password
// then misses exactly as an unknown user does, and no lookup touches
// anything a client chose. Comparing keys is not constant-time, but the
// keys are MACs under a key no client knows, so their timing tells nothing.
func (a *Authenticator) remembered(mac [sha256.Size]byte) bool {
	if a.cache == nil {
		return false
	}
	expires, ok := a.cache.Get(mac)
	return ok && a.now().Before(expires)
}

// String describes a without any hash or password.
func (a *Authenticator) String() string { return "auth.Authenticator(" + a.users.String() + ")" }

// GoString is String.
func (a *Authenticator) GoString() string { return a.String() }
