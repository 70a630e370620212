package auth

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// compareCall is what one bcrypt check was asked to do.
type compareCall struct {
	cost   int
	result error
}

// countingCompare wraps a's bcrypt compare, recording every call.
type countingCompare struct {
	mu    sync.Mutex
	calls []compareCall
}

func (c *countingCompare) wrap(a *Authenticator) {
	inner := a.compare
	a.compare = func(hash, password []byte) error {
		err := inner(hash, password)
		cost, cerr := bcrypt.Cost(hash)
		if cerr != nil {
			cost = -1
		}
		c.mu.Lock()
		c.calls = append(c.calls, compareCall{cost, err})
		c.mu.Unlock()
		return err
	}
}

func (c *countingCompare) take() []compareCall {
	c.mu.Lock()
	defer c.mu.Unlock()
	calls := c.calls
	c.calls = nil
	return calls
}

// newTestAuth builds an Authenticator for users (name -> password, hashed
// at bcrypt.MinCost) with a fake clock and a counting compare.
func newTestAuth(t *testing.T, users map[string]string, opts ...Option) (*Authenticator, *fakeClock, *countingCompare) {
	t.Helper()
	var b strings.Builder
	for u, pw := range users {
		fmt.Fprintf(&b, "%s:%s\n", u, hashOf(t, pw))
	}
	h, err := ParseHtpasswd(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	a, err := NewAuthenticator(h, append([]Option{WithClock(clock.Now)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	cc := &countingCompare{}
	cc.wrap(a)
	return a, clock, cc
}

func TestCheck(t *testing.T) {
	a, _, cc := newTestAuth(t, map[string]string{"ci": "s3cret", "empty": ""})
	for _, tc := range []struct {
		name, user, pw string
		want           bool
	}{
		{"right password", "ci", "s3cret", true},
		{"wrong password", "ci", "s3cre", false},
		{"password prefix", "ci", "s3cret\x00", false},
		{"other case user", "CI", "s3cret", false},
		{"unknown user", "nobody", "s3cret", false},
		{"empty user", "", "s3cret", false},
		{"empty password", "empty", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := a.Check(tc.user, tc.pw); got != tc.want {
				t.Errorf("Check(%q, %q): got %v, want %v", tc.user, tc.pw, got, tc.want)
			}
		})
	}
	cc.take()
}

// An unknown user costs exactly what a wrong password costs: one full
// bcrypt check at the cost of the file's entries, ending in a mismatch (not
// a quick format error).
func TestUnknownUserCostsOneBcryptOfTheSameCost(t *testing.T) {
	a, _, cc := newTestAuth(t, map[string]string{"ci": "s3cret"})
	a.Check("ci", "wrong")
	wrong := cc.take()
	a.Check("nobody", "wrong")
	unknown := cc.take()
	want := []compareCall{{bcrypt.MinCost, bcrypt.ErrMismatchedHashAndPassword}}
	for name, got := range map[string][]compareCall{"wrong password": wrong, "unknown user": unknown} {
		if len(got) != 1 || got[0] != want[0] {
			t.Errorf("%s: got bcrypt calls %v, want %v", name, got, want)
		}
	}
}

func TestDummyHash(t *testing.T) {
	for _, cost := range []int{bcrypt.MinCost, 5, bcrypt.DefaultCost, 12, bcrypt.MaxCost} {
		d := dummyHash(cost)
		if got, err := checkBcrypt(string(d)); err != nil || got != cost {
			t.Errorf("dummyHash(%d): checkBcrypt got %d, %v; want %d", cost, got, err, cost)
		}
	}
	// Checking it runs bcrypt to the end (costs above 5 are slow to show).
	for _, cost := range []int{bcrypt.MinCost, 5} {
		for _, pw := range []string{"", "password", strings.Repeat("x", 100)} {
			if err := bcrypt.CompareHashAndPassword(dummyHash(cost), []byte(pw)); !errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
				t.Errorf("compare dummyHash(%d) with %q: got %v, want ErrMismatchedHashAndPassword", cost, pw, err)
			}
		}
	}
}

func TestCheckRemembersSuccessForTTL(t *testing.T) {
	a, clock, cc := newTestAuth(t, map[string]string{"ci": "s3cret", "bot": "b0t"}, WithCacheTTL(time.Minute))
	steps := []struct {
		name      string
		advance   time.Duration
		user, pw  string
		want      bool
		wantCalls int
	}{
		{"first check", 0, "ci", "s3cret", true, 1},
		{"remembered", 0, "ci", "s3cret", true, 0},
		{"still remembered", 59 * time.Second, "ci", "s3cret", true, 0},
		{"wrong password is checked", 0, "ci", "s3cre", false, 1},
		{"and not remembered", 0, "ci", "s3cre", false, 1},
		{"success still remembered", 0, "ci", "s3cret", true, 0},
		{"other user is checked", 0, "bot", "b0t", true, 1},
		{"unknown user is checked every time", 0, "nobody", "x", false, 1},
		{"unknown user again", 0, "nobody", "x", false, 1},
		{"expired", time.Second, "ci", "s3cret", true, 1},
		{"remembered anew", 0, "ci", "s3cret", true, 0},
	}
	for _, s := range steps {
		clock.Advance(s.advance)
		got := a.Check(s.user, s.pw)
		calls := len(cc.take())
		if got != s.want || calls != s.wantCalls {
			t.Errorf("%s: Check(%q, %q): got %v with %d bcrypt checks, want %v with %d", s.name, s.user, s.pw, got, calls, s.want, s.wantCalls)
		}
	}
}

func TestCheckCacheOff(t *testing.T) {
	for name, opt := range map[string]Option{"ttl 0": WithCacheTTL(0), "size 0": WithCacheSize(0)} {
		a, _, cc := newTestAuth(t, map[string]string{"ci": "s3cret"}, opt)
		for range 3 {
			if !a.Check("ci", "s3cret") {
				t.Fatalf("%s: Check: got false, want true", name)
			}
		}
		if got := len(cc.take()); got != 3 {
			t.Errorf("%s: got %d bcrypt checks for 3 Checks, want 3", name, got)
		}
	}
}

func TestCheckCacheIsBounded(t *testing.T) {
	users := map[string]string{"a": "pa", "b": "pb", "c": "pc"}
	a, _, cc := newTestAuth(t, users, WithCacheSize(2))
	for _, u := range []string{"a", "b", "c"} {
		a.Check(u, users[u])
	}
	if got := a.cache.Len(); got != 2 {
		t.Errorf("cache size: got %d, want 2", got)
	}
	cc.take()
	a.Check("c", "pc") // most recent: remembered
	a.Check("a", "pa") // least recent: evicted, checked again
	if got := len(cc.take()); got != 1 {
		t.Errorf("got %d bcrypt checks, want 1 (for the evicted user only)", got)
	}
}

func TestNewAuthenticatorOptions(t *testing.T) {
	h, err := ParseHtpasswd(strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		h    *Htpasswd
		opts []Option
		want string
	}{
		{"nil htpasswd", nil, nil, "nil htpasswd"},
		{"negative ttl", h, []Option{WithCacheTTL(-time.Second)}, "cache TTL -1s is negative"},
		{"negative size", h, []Option{WithCacheSize(-1)}, "cache size -1 is negative"},
		{"nil clock", h, []Option{WithClock(nil)}, "nil clock"},
	} {
		if _, err := NewAuthenticator(tc.h, tc.opts...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	a, err := NewAuthenticator(h)
	if err != nil {
		t.Fatalf("NewAuthenticator(empty file): %v", err)
	}
	if got, want := a.ttl, DefaultCacheTTL; got != want {
		t.Errorf("default TTL: got %v, want %v", got, want)
	}
	if got, want := string(a.dummy[:7]), fmt.Sprintf("$2a$%02d$", bcrypt.DefaultCost); got != want {
		t.Errorf("dummy hash of an empty file: got cost prefix %q, want %q", got, want)
	}
	if a.Check("anyone", "") { // one bcrypt of cost 10: slow under -race
		t.Errorf("Check on an empty file: got true, want false")
	}
}

func TestCheckConcurrent(t *testing.T) {
	users := map[string]string{"a": "pa", "b": "pb"}
	a, clock, _ := newTestAuth(t, users, WithCacheSize(1))
	var wrong atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 10 {
				u := []string{"a", "b"}[(i+j)%2]
				if !a.Check(u, users[u]) || a.Check(u, "nope") {
					wrong.Add(1)
				}
				if j%3 == 0 {
					clock.Advance(30 * time.Second)
				}
			}
		})
	}
	wg.Wait()
	if n := wrong.Load(); n != 0 {
		t.Errorf("got %d wrong answers under concurrency, want 0", n)
	}
}

// A remembered success is for that user and password only, however the
// bytes of another pair would run together.
func TestRememberedSuccessIsForThatUserOnly(t *testing.T) {
	a, _, _ := newTestAuth(t, map[string]string{"a": "b\x00c", "ab": "c"})
	if !a.Check("a", "b\x00c") {
		t.Fatal(`Check("a", "b\x00c"): got false, want true`)
	}
	for _, tc := range []struct{ user, pw string }{
		{"a\x00b", "c"}, {"a\x00", "b\x00c"}, {"", "a\x00b\x00c"}, {"ab", "\x00c"}, {"a", "b\x00c\x00"},
	} {
		if a.Check(tc.user, tc.pw) {
			t.Errorf("Check(%q, %q) after a success of (a, b\\x00c): got true, want false", tc.user, tc.pw)
		}
	}
}
