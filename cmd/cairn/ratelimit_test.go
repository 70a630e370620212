package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func loginRequest(remote string) *http.Request {
	r := httptest.NewRequest("GET", "/v2/", nil)
	r.RemoteAddr = remote
	return r
}

// failN begins n checks for keys and reports whether all were allowed.
func failN(l *loginLimiter, keys []limitKey, n int) bool {
	for range n {
		if _, ok := l.begin(keys); !ok {
			return false
		}
	}
	return true
}

// Ten failures from one address block that address, for any user, until
// the window ends; another address and another user are not blocked.
func TestLoginLimiterPerAddressAndUser(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_000_000, 0)}
	l := newLoginLimiter(10, time.Minute, 100, clock.now)
	if !failN(l, loginKeys(loginRequest("192.0.2.1:1000"), "mallory"), 4) ||
		!failN(l, loginKeys(loginRequest("192.0.2.1:2000"), "alice"), 6) {
		t.Fatal("a check within the limit was refused")
	}
	clock.advance(20 * time.Second)
	retry, ok := l.begin(loginKeys(loginRequest("192.0.2.1:3000"), "carol"))
	if ok || retry != 40*time.Second {
		t.Errorf("11th check from the address (new port, new user): ok %v retry %s, want refused, retry 40s", ok, retry)
	}
	if _, ok := l.begin(loginKeys(loginRequest("[2001:db8::1]:1000"), "carol")); !ok {
		t.Error("a check from another address was refused")
	}
	if !failN(l, loginKeys(loginRequest("198.51.100.1:1"), "bob"), 10) {
		t.Fatal("bob's first 10 checks were refused")
	}
	if _, ok := l.begin(loginKeys(loginRequest("198.51.100.2:1"), "bob")); ok {
		t.Error("bob's 11th check, from a third address, was allowed")
	}
	clock.advance(40 * time.Second)
	if _, ok := l.begin(loginKeys(loginRequest("192.0.2.1:3000"), "carol")); !ok {
		t.Error("a check after the window ended was refused")
	}
}

// Successful checks are refunded: they never count toward the limit.
func TestLoginLimiterSuccessesNotCounted(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_000_000, 0)}
	l := newLoginLimiter(3, time.Minute, 100, clock.now)
	keys := loginKeys(loginRequest("192.0.2.1:1"), "alice")
	for i := range 50 {
		if _, ok := l.begin(keys); !ok {
			t.Fatalf("success %d refused", i)
		}
		l.succeeded(keys)
	}
	if !failN(l, keys, 3) {
		t.Fatal("failures within the limit refused after successes")
	}
	if _, ok := l.begin(keys); ok {
		t.Error("4th failure allowed, want refused")
	}
}

// The map never holds more than its size: ended windows are swept, and
// when every window is current the oldest is forgotten.
func TestLoginLimiterBounded(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_000_000, 0)}
	l := newLoginLimiter(1, time.Minute, 8, clock.now)
	for i := range 100 {
		clock.advance(time.Second)
		l.begin(loginKeys(loginRequest(net.JoinHostPort(net.IPv4(10, 0, 0, byte(i)).String(), "1")), "u"+string(rune('a'+i%26))))
		if len(l.counts) > 8 {
			t.Fatalf("after %d checks: %d keys, want at most 8", i+1, len(l.counts))
		}
	}
	clock.advance(2 * time.Minute)
	l.begin(loginKeys(loginRequest("192.0.2.9:1"), "z"))
	if len(l.counts) != 2 {
		t.Errorf("after the windows ended: %d keys, want 2 (the sweep dropped the rest)", len(l.counts))
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

// sendFrom is send from another loopback address (127.0.0.2).
func sendFrom(t *testing.T, local, method, url, user string) *http.Response {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		DisableKeepAlives: true,
	}}
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	u, pw, explicit := strings.Cut(user, ":")
	if !explicit {
		pw = pushUsers[user]
	}
	req.SetBasicAuth(u, pw)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s from %s: %v", method, url, local, err)
	}
	resp.Body.Close()
	return resp
}

// Ten wrong passwords for bob on the API: the 11th attempt, and even
// bob's right password, get 429 TOOMANYREQUESTS with Retry-After; alice's
// right password from another address still pushes.
func TestFailedLoginsLimitedOnAPI(t *testing.T) {
	f := newPushFixture(t)
	uploads := f.node.url("/v2/registry.internal/bob/app/blobs/uploads/")
	for i := range loginFailures {
		if resp, _ := send(t, "POST", uploads, "bob:wrong", nil); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d, want 401", i+1, resp.StatusCode)
		}
	}
	for _, user := range []string{"bob:wrong", "bob"} {
		resp, body := send(t, "POST", uploads, user, nil)
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s after 10 failures: %d Retry-After %q, want 429 with Retry-After", user, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		assertOCIError(t, user+" after 10 failures", body, "TOOMANYREQUESTS")
	}
	if resp := sendFrom(t, "127.0.0.2", "POST", f.node.url("/v2/registry.internal/team/app/blobs/uploads/"), "alice"); resp.StatusCode != http.StatusAccepted {
		t.Errorf("alice's push from another address: %d, want 202", resp.StatusCode)
	}
}

// The same at GET /token: bob's 11th attempt gets 429 with Retry-After;
// carol's right password from another address still gets a token.
func TestFailedLoginsLimitedAtToken(t *testing.T) {
	f := newBearerFixture(t)
	tokenURL := f.node.url("/token?service=cairn&scope=repository:registry.internal/bob/app:pull")
	for i := range loginFailures {
		if resp, _ := send(t, "GET", tokenURL, "bob:wrong", nil); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong password %d at /token: %d, want 401", i+1, resp.StatusCode)
		}
	}
	resp, body := send(t, "GET", tokenURL, "bob:wrong", nil)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("11th attempt at /token: %d Retry-After %q, want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	assertOCIError(t, "11th attempt at /token", body, "TOOMANYREQUESTS")
	if resp := sendFrom(t, "127.0.0.2", "GET", tokenURL, "carol"); resp.StatusCode != http.StatusOK {
		t.Errorf("carol's token from another address: %d, want 200", resp.StatusCode)
	}
}
