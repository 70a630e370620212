package auth

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestParseBasic(t *testing.T) {
	for _, tc := range []struct {
		name, header string
		user, pass   string
		ok           bool
	}{
		{"plain", "Basic " + b64("ci:s3cret"), "ci", "s3cret", true},
		{"scheme lower case", "basic " + b64("ci:s3cret"), "ci", "s3cret", true},
		{"scheme upper case", "BASIC " + b64("ci:s3cret"), "ci", "s3cret", true},
		{"two spaces", "Basic  " + b64("ci:s3cret"), "", "", false},
		{"colon in password", "Basic " + b64("ci:a:b:c"), "ci", "a:b:c", true},
		{"empty password", "Basic " + b64("ci:"), "ci", "", true},
		{"utf-8 user", "Basic " + b64("jürgen:pw"), "jürgen", "pw", true},
		{"space in user", "Basic " + b64("a b:pw"), "a b", "pw", true},
		{"empty", "", "", "", false},
		{"scheme only", "Basic", "", "", false},
		{"scheme and space", "Basic ", "", "", false},
		{"bearer", "Bearer " + b64("ci:s3cret"), "", "", false},
		{"no space", "Basic" + b64("ci:s3cret"), "", "", false},
		{"tab", "Basic\t" + b64("ci:s3cret"), "", "", false},
		{"leading space", " Basic " + b64("ci:s3cret"), "", "", false},
		{"trailing space", "Basic " + b64("ci:s3cret") + " ", "", "", false},
		{"no colon", "Basic " + b64("ci"), "", "", false},
		{"empty user", "Basic " + b64(":s3cret"), "", "", false},
		{"control in user", "Basic " + b64("c\x00i:pw"), "", "", false},
		{"newline in user", "Basic " + b64("c\ni:pw"), "", "", false},
		{"invalid utf-8 user", "Basic " + b64("c\xffi:pw"), "", "", false},
		{"url-safe base64", "Basic " + base64.URLEncoding.EncodeToString([]byte("??>:>>?")), "", "", false},
		{"unpadded", "Basic " + base64.RawStdEncoding.EncodeToString([]byte("ci:pw")), "", "", false},
		{"not base64", "Basic ci:s3cret", "", "", false},
		{"newline in token", "Basic " + b64("ci:s3cret")[:4] + "\n" + b64("ci:s3cret")[4:], "", "", false},
		{"non-zero padding bits", "Basic Y2k6cHd=", "", "", false}, // "ci:pw" is Y2k6cHc=
		{"too long", "Basic " + b64("ci:"+strings.Repeat("x", MaxHeaderLen)), "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			user, pass, ok := ParseBasic(tc.header)
			if user != tc.user || pass != tc.pass || ok != tc.ok {
				t.Errorf("ParseBasic(%q): got %q, %q, %v; want %q, %q, %v", tc.header, user, pass, ok, tc.user, tc.pass, tc.ok)
			}
		})
	}
}

func TestChallenge(t *testing.T) {
	for _, tc := range []struct{ realm, want string }{
		{"cairn", `Basic realm="cairn", charset="UTF-8"`},
		{`say "hi"\`, `Basic realm="say \"hi\"\\", charset="UTF-8"`},
		{"a\r\nSet-Cookie: x", `Basic realm="aSet-Cookie: x", charset="UTF-8"`},
	} {
		if got := Challenge(tc.realm); got != tc.want {
			t.Errorf("Challenge(%q): got %s, want %s", tc.realm, got, tc.want)
		}
	}
}

func FuzzParseBasic(f *testing.F) {
	for _, s := range []string{
		"Basic " + b64("ci:s3cret"), "basic " + b64(":"), "Basic " + b64("a:b:c"),
		"Basic  " + b64("u:"), "Bearer x", "Basic", "Basic =", "Basic Y2k6cHd=", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		user, pass, ok := ParseBasic(header)
		if !ok {
			if user != "" || pass != "" {
				t.Fatalf("ParseBasic(%q): got %q, %q with ok=false, want empty strings", header, user, pass)
			}
			return
		}
		if !validUser(user) {
			t.Fatalf("ParseBasic(%q): got user %q, which is not a valid user", header, user)
		}
		// Whatever we accept, net/http accepts the same way.
		r := &http.Request{Header: http.Header{"Authorization": {header}}}
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
			t.Fatalf("ParseBasic(%q) = %q, %q; net/http got %q, %q, %v", header, user, pass, u, p, ok)
		}
		// And the canonical encoding of the result reads back the same.
		u2, p2, ok2 := ParseBasic("Basic " + b64(user+":"+pass))
		if !ok2 || u2 != user || p2 != pass {
			t.Fatalf("ParseBasic(re-encoded %q, %q): got %q, %q, %v", user, pass, u2, p2, ok2)
		}
	})
}
