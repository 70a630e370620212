package auth

import (
	"reflect"
	"testing"
)

func TestBearerString(t *testing.T) {
	b := Bearer{Realm: "https://mirror.example.com/token", Service: "cairn", Scopes: []Scope{
		{"docker.io/library/alpine", NewActions(Pull)}, {"ghcr.io/o/a", NewActions(Pull, Push)}}}
	want := `Bearer realm="https://mirror.example.com/token",service="cairn",scope="repository:docker.io/library/alpine:pull repository:ghcr.io/o/a:pull,push"`
	if got := b.String(); got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	got, err := ParseBearer(want)
	if err != nil || !reflect.DeepEqual(got, b) {
		t.Errorf("ParseBearer = %+v, %v; want %+v", got, err, b)
	}
	if got := (Bearer{Realm: "r"}).String(); got != `Bearer realm="r"` {
		t.Errorf("no service or scope: got %s", got)
	}
}

func TestBearerQuoting(t *testing.T) {
	b := Bearer{Realm: "http://h/t?a=\"x\"\\y\r\n", Service: `s,"x"`}
	got, err := ParseBearer(b.String())
	if err != nil {
		t.Fatal(err)
	}
	if want := "http://h/t?a=\"x\"\\y"; got.Realm != want || got.Service != b.Service {
		t.Errorf("got realm %q service %q, want %q and %q", got.Realm, got.Service, want, b.Service)
	}
}

func TestParseChallenge(t *testing.T) {
	tests := []struct {
		in     string
		scheme string
		params map[string]string
		err    bool
	}{
		{`Bearer realm="https://a/token",service="reg"`, "Bearer", map[string]string{"realm": "https://a/token", "service": "reg"}, false},
		{`Bearer Realm="x" , error=invalid_token`, "Bearer", map[string]string{"realm": "x", "error": "invalid_token"}, false},
		{`Basic realm="cairn", charset="UTF-8"`, "Basic", map[string]string{"realm": "cairn", "charset": "UTF-8"}, false},
		{`Bearer`, "Bearer", map[string]string{}, false},
		{`Bearer realm="a`, "", nil, true},
		{`Bearer realm="a",`, "", nil, true},
		{`Bearer realm="a" service="b"`, "", nil, true},
		{`Bearer realm="a",realm="b"`, "", nil, true},
		{`Bearer realm=a"b`, "", nil, true},
		{"Bearer realm=\"a\x01\"", "", nil, true},
		{`"x" realm=a`, "", nil, true},
		{``, "", nil, true},
	}
	for _, tt := range tests {
		s, p, err := ParseChallenge(tt.in)
		if (err != nil) != tt.err || s != tt.scheme || !reflect.DeepEqual(p, tt.params) {
			t.Errorf("ParseChallenge(%q) = %q, %v, %v; want %q, %v, error %v", tt.in, s, p, err, tt.scheme, tt.params, tt.err)
		}
	}
	for _, in := range []string{`Basic realm="x"`, `Bearer service="x"`, `Bearer realm="x",scope="repository:a:steal"`} {
		if _, err := ParseBearer(in); err == nil {
			t.Errorf("ParseBearer(%q): got no error", in)
		}
	}
}

func FuzzParseChallenge(f *testing.F) {
	for _, s := range []string{`Bearer realm="https://a/token",service="cairn",scope="repository:a/b:pull"`,
		`Basic realm="cairn", charset="UTF-8"`, `Bearer realm="a\"b\\c"`, `Bearer realm=x , y=z`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		b, err := ParseBearer(in)
		if err != nil {
			_, _, _ = ParseChallenge(in)
			return
		}
		// What parsed formats and parses back the same, once control
		// characters are dropped (String drops them).
		want := Bearer{Realm: dropCtl(b.Realm), Service: dropCtl(b.Service), Scopes: b.Scopes}
		if want.Realm == "" {
			return
		}
		again, err := ParseBearer(b.String())
		if err != nil || again.Realm != want.Realm || again.Service != want.Service || !reflect.DeepEqual(again.Scopes, want.Scopes) {
			t.Fatalf("%q -> %s -> %+v, %v; want %+v", in, b.String(), again, err, want)
		}
	})
}

func dropCtl(s string) string {
	_, p, _ := ParseChallenge("X v=" + quote(s))
	return p["v"]
}
