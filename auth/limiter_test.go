package auth

import (
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

// testClock is a clock tests move by hand.
type testClock struct{ t time.Time }

func (c *testClock) now() time.Time          { return c.t }
func (c *testClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestLimiter(t *testing.T, pair, addr int, opts ...LimiterOption) (*LoginLimiter, *testClock) {
	t.Helper()
	clock := &testClock{t: time.Unix(1_000_000, 0)}
	l, err := NewLoginLimiter(append([]LimiterOption{WithLimits(pair, addr, time.Minute), WithLimiterClock(clock.now)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return l, clock
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

// failures begins n checks and reports whether all were allowed.
func failures(l *LoginLimiter, user string, a netip.Addr, n int) bool {
	for range n {
		if _, ok := l.Begin(user, a); !ok {
			return false
		}
	}
	return true
}

// A guesser of bob's password from one address is refused there, until
// the window ends; bob from another address is not.
func TestGuesserRefusedWhileRealUserElsewhereLogsIn(t *testing.T) {
	l, clock := newTestLimiter(t, 10, 30)
	guesser, bob := ip("192.0.2.66"), ip("198.51.100.7")
	if !failures(l, "bob", guesser, 10) {
		t.Fatal("a failure within the limit was refused")
	}
	clock.advance(20 * time.Second)
	if retry, ok := l.Begin("bob", guesser); ok || retry != 40*time.Second {
		t.Errorf("11th guess: ok %v retry %s, want refused with 40s left", ok, retry)
	}
	if _, ok := l.Begin("bob", bob); !ok {
		t.Fatal("bob from his own address was refused: failures elsewhere locked him out")
	}
	l.Succeeded("bob", bob)
	clock.advance(40 * time.Second)
	if _, ok := l.Begin("bob", guesser); !ok {
		t.Error("a check after the window ended was refused")
	}
}

// One address guessing many user names is refused once the address's
// count is reached, for every user who has not logged in from it lately.
func TestAddressRotatingUserNamesRefused(t *testing.T) {
	l, _ := newTestLimiter(t, 10, 30)
	a := ip("192.0.2.1")
	for i := range 30 {
		if _, ok := l.Begin(string(rune('a'+i%26))+"user", a); !ok {
			t.Fatalf("failure %d refused, want the first 30 allowed", i+1)
		}
	}
	if _, ok := l.Begin("newname", a); ok {
		t.Error("31st failure from the address, a new user name: allowed, want refused")
	}
}

// An IPv6 guesser rotating addresses inside one /64 is counted as one
// address; another /64 is not blocked.
func TestIPv6GuesserRotatingInsideA64Refused(t *testing.T) {
	l, _ := newTestLimiter(t, 10, 30)
	for i := range 10 {
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, byte(i >> 8), byte(i)})
		if _, ok := l.Begin("bob", a); !ok {
			t.Fatalf("guess %d refused", i+1)
		}
	}
	if _, ok := l.Begin("bob", ip("2001:db8:0:1:ffff:ffff:ffff:ffff")); ok {
		t.Error("11th guess from another address of the same /64: allowed, want refused")
	}
	if _, ok := l.Begin("bob", ip("2001:db8:0:2::1")); !ok {
		t.Error("a guess from another /64 was refused")
	}
}

// A user who logged in from an address within the trust period is not
// blocked by other people's failures from that address (a shared NAT),
// only by their own.
func TestRecentSuccessNotBlockedByOthersAtSameAddress(t *testing.T) {
	l, clock := newTestLimiter(t, 3, 5)
	nat := ip("203.0.113.9")
	if _, ok := l.Begin("alice", nat); !ok {
		t.Fatal("alice's first login refused")
	}
	l.Succeeded("alice", nat)
	clock.advance(30 * time.Minute)
	for i := range 5 {
		l.Begin("mallory"+string(rune('a'+i)), nat)
	}
	if _, ok := l.Begin("carol", nat); ok {
		t.Error("carol, never seen here, after the address's limit: allowed, want refused")
	}
	if _, ok := l.Begin("alice", nat); !ok {
		t.Error("alice, who logged in from here 30 minutes ago: refused by others' failures")
	}
	if !failures(l, "alice", nat, 2) {
		t.Fatal("alice's own failures within her limit were refused")
	}
	if _, ok := l.Begin("alice", nat); ok {
		t.Error("alice's 4th failure: allowed, want refused by her own count")
	}
	clock.advance(31 * time.Minute) // the window and the trust have ended
	for i := range 5 {
		l.Begin("mallory"+string(rune('a'+i)), nat)
	}
	if _, ok := l.Begin("alice", nat); ok {
		t.Error("alice, trust expired, after the address's limit: allowed, want refused")
	}
}

// Successful checks are refunded: they never count toward a limit.
func TestSuccessesNotCounted(t *testing.T) {
	l, _ := newTestLimiter(t, 3, 3)
	a := ip("192.0.2.1")
	for i := range 50 {
		if _, ok := l.Begin("alice", a); !ok {
			t.Fatalf("success %d refused", i)
		}
		l.Succeeded("alice", a)
	}
	if !failures(l, "alice", a, 3) {
		t.Fatal("failures within the limit refused after successes")
	}
	if _, ok := l.Begin("alice", a); ok {
		t.Error("4th failure allowed, want refused")
	}
}

// The memory holds at most its size; the oldest keys go first, so an
// attacker spraying addresses forgets old counts, never grows memory.
func TestLimiterMemoryBounded(t *testing.T) {
	l, _ := newTestLimiter(t, 1, 1, WithLimiterSize(8))
	for i := range 100 {
		l.Begin("u", netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}))
		if n := l.counts.Len(); n > 8 {
			t.Fatalf("after %d checks: %d keys, want at most 8", i+1, n)
		}
	}
}

func TestClientAddrBelievesOnlyTrustedProxies(t *testing.T) {
	trusted, err := ParsePrefixes([]string{"10.0.0.0/8", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"no proxy", "192.0.2.1:5000", nil, "192.0.2.1"},
		{"untrusted peer's header ignored", "192.0.2.1:5000", []string{"198.51.100.1"}, "192.0.2.1"},
		{"trusted proxy names the client", "10.1.2.3:5000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"rightmost untrusted hop wins", "10.1.2.3:5000", []string{"6.6.6.6, 198.51.100.1, 10.9.9.9"}, "198.51.100.1"},
		{"several header lines", "[::1]:5000", []string{"6.6.6.6", "198.51.100.2"}, "198.51.100.2"},
		{"malformed hop stops the walk", "10.1.2.3:5000", []string{"198.51.100.1, garbage"}, "10.1.2.3"},
		{"trusted proxy without a header", "10.1.2.3:5000", nil, "10.1.2.3"},
		{"IPv4-mapped peer", "[::ffff:192.0.2.9]:1", nil, "192.0.2.9"},
	} {
		r := httptest.NewRequest("GET", "/v2/", nil)
		r.RemoteAddr = tc.remote
		for _, v := range tc.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := ClientAddr(r, trusted); got != ip(tc.want) {
			t.Errorf("%s: got %v, want %s", tc.name, got, tc.want)
		}
	}
	if _, err := ParsePrefixes([]string{"10.0.0.0/33"}); err == nil {
		t.Error("ParsePrefixes(10.0.0.0/33): no error")
	}
}

func TestNewLoginLimiterRefusesBadOptions(t *testing.T) {
	for _, opts := range [][]LimiterOption{
		{WithLimits(0, 1, time.Minute)}, {WithLimits(1, 1, 0)}, {WithTrustFor(0)}, {WithLimiterClock(nil)}, {WithLimiterSize(0)},
	} {
		if _, err := NewLoginLimiter(opts...); err == nil {
			t.Errorf("NewLoginLimiter with a bad option: no error")
		}
	}
}

func TestTooManyLoginsRetryAfter(t *testing.T) {
	for _, tt := range []struct{ in, want time.Duration }{
		{0, time.Second}, {time.Millisecond, time.Second}, {time.Second, time.Second},
		{1500 * time.Millisecond, 2 * time.Second}, {59*time.Second + 1, time.Minute},
	} {
		if got := (tooManyLogins{tt.in}).RetryAfter(); got != tt.want {
			t.Errorf("RetryAfter of %s: got %s, want %s", tt.in, got, tt.want)
		}
	}
}
