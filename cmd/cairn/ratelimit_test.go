package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cairn-mirror/cairn/auth"
)

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

// Ten wrong passwords for bob from one address: the 11th attempt there,
// and even bob's right password from there, get 429 TOOMANYREQUESTS with
// Retry-After (the limiter refuses before the password is checked:
// auth's TestGuesserRefusedWhileRealUserElsewhereLogsIn); bob's right password from another
// address still pushes: a guesser cannot lock him out.
func TestGuesserRefusedOnAPIWhileRealUserElsewherePushes(t *testing.T) {
	f := newPushFixture(t)
	uploads := f.node.url("/v2/registry.internal/bob/app/blobs/uploads/")
	for i := range auth.DefaultPairFailures {
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
	if resp := sendFrom(t, "127.0.0.2", "POST", uploads, "bob"); resp.StatusCode != http.StatusAccepted {
		t.Errorf("bob's push from another address: %d, want 202", resp.StatusCode)
	}
}

// The same at GET /token: bob's 11th attempt gets 429 with Retry-After;
// carol's right password from another address still gets a token.
func TestFailedLoginsLimitedAtToken(t *testing.T) {
	f := newBearerFixture(t)
	tokenURL := f.node.url("/token?service=cairn&scope=repository:registry.internal/bob/app:pull")
	for i := range auth.DefaultPairFailures {
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

// Behind a trusted proxy, X-Forwarded-For names the client: a guesser is
// refused by its own address while the real user, behind the same proxy
// but from another address, pushes. From an untrusted peer the header is
// ignored, so a guesser cannot dodge its count by rotating it.
func TestTrustedProxyForwardedForNamesTheClient(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted string
		wantBob int // bob's push with a right password, forwarded for another client
	}{
		{"trusted proxy", "127.0.0.1/32", http.StatusAccepted},
		{"untrusted peer", "192.0.2.0/24", http.StatusTooManyRequests},
	} {
		t.Run(tc.name, func(t *testing.T) {
			section := fmt.Sprintf(`auth:
  htpasswd_file: %q
  trusted_proxies: [%q]
  access:
    - users: [bob]
      repositories: ["registry.internal/bob/app"]
      actions: [pull, push]`, writeHtpasswd(t), tc.trusted)
			n := startNode(t, testConfig(t, t.TempDir(), "127.0.0.1:9", "127.0.0.1:9", section))
			uploads := n.url("/v2/registry.internal/bob/app/blobs/uploads/")
			for i := range auth.DefaultPairFailures {
				xff := fmt.Sprintf("198.51.100.%d", 1+i%2) // the header rotates; only a trusted peer's counts
				if resp, _ := send(t, "POST", uploads, "bob:wrong", nil, "X-Forwarded-For", xff); resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("wrong password %d: %d, want 401", i+1, resp.StatusCode)
				}
			}
			if tc.trusted == "127.0.0.1/32" {
				for range auth.DefaultPairFailures / 2 { // (bob, 198.51.100.1) reaches its limit
					send(t, "POST", uploads, "bob:wrong", nil, "X-Forwarded-For", "198.51.100.1")
				}
				if resp, _ := send(t, "POST", uploads, "bob", nil, "X-Forwarded-For", "198.51.100.1"); resp.StatusCode != http.StatusTooManyRequests {
					t.Errorf("bob from the guesser's forwarded address: %d, want 429", resp.StatusCode)
				}
			}
			if resp, _ := send(t, "POST", uploads, "bob", nil, "X-Forwarded-For", "203.0.113.5"); resp.StatusCode != tc.wantBob {
				t.Errorf("bob's push forwarded for 203.0.113.5: %d, want %d", resp.StatusCode, tc.wantBob)
			}
		})
	}
}
