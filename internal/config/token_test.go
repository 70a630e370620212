package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func tokenKeyFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "token.key")
	if err := os.WriteFile(path, []byte(strings.Repeat("k", 40)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTokenExample(t *testing.T) {
	key := tokenKeyFile(t)
	c := mustLoad(t, `version: 1
auth:
  token:
    realm: https://mirror.example.com/token
    service: cairn
    key_file: '`+key+`'
    expiry: 15m
`+authUpstreams)
	want := Token{Realm: "https://mirror.example.com/token", Service: "cairn", KeyFile: key, Expiry: Duration(15 * time.Minute)}
	if c.Auth.Token == nil || *c.Auth.Token != want {
		t.Errorf("got %+v, want %+v", c.Auth.Token, want)
	}
}

func TestTokenDefaults(t *testing.T) {
	tok := &Token{KeyFile: "k"}
	tok.ApplyDefaults()
	if tok.Service != DefaultTokenService || tok.Expiry.D() != DefaultTokenExpiry || tok.Realm != "" {
		t.Errorf("got %+v, want service %q, expiry %v, no realm", tok, DefaultTokenService, DefaultTokenExpiry)
	}
	var none *Token
	none.ApplyDefaults() // nil: no token section, nothing to fill
	c := mustLoad(t, "version: 1\n"+authUpstreams)
	if c.Auth.Token != nil {
		t.Errorf("no token section: got %+v, want nil", c.Auth.Token)
	}
}

func TestTokenValidate(t *testing.T) {
	key := tokenKeyFile(t)
	tests := []struct {
		yaml string
		want []string // problems, by field path and a phrase
	}{
		{"key_file: '" + key + "'", nil},
		{"key_file: '" + key + "'\n    realm: http://10.0.0.1:5000/token\n    expiry: 24h", nil},
		{"service: cairn", []string{"auth.token.key_file: empty"}},
		{"key_file: /nonexistent/token.key", []string{"auth.token.key_file: stat /nonexistent/token.key"}},
		{"key_file: '" + filepath.Dir(key) + "'", []string{"auth.token.key_file: " + filepath.Dir(key) + " is a directory"}},
		{"key_file: '" + key + "'\n    expiry: 25h", []string{"auth.token.expiry: got 25h, want > 0 and at most 24h"}},
		{"key_file: '" + key + "'\n    realm: ftp://h/token", []string{`auth.token.realm: got scheme "ftp"`}},
		{"key_file: '" + key + "'\n    realm: /token", []string{"auth.token.realm: got scheme"}},
		{"key_file: '" + key + "'\n    realm: https:///token", []string{"auth.token.realm: no host"}},
		{"key_file: '" + key + "'\n    realm: https://u:p@h/token", []string{"auth.token.realm: holds user information"}},
		{"key_file: '" + key + "'\n    service: 'a b'", []string{`auth.token.service: "a b"`}},
		{"realm: nope\n    expiry: 48h", []string{"auth.token.key_file: empty", "auth.token.expiry:", "auth.token.realm:"}},
	}
	for _, tt := range tests {
		_, err := Load(strings.NewReader("version: 1\nauth:\n  token:\n    " + tt.yaml + "\n" + authUpstreams))
		var ve *ValidationError
		if len(tt.want) == 0 {
			if err != nil {
				t.Errorf("%q: %v", tt.yaml, err)
			}
			continue
		}
		if !errors.As(err, &ve) {
			t.Errorf("%q: got %v, want a *ValidationError", tt.yaml, err)
			continue
		}
		got := strings.Join(ve.Problems, "\n")
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("%q: problems\n%s\nwant one containing %q", tt.yaml, got, w)
			}
		}
		if len(ve.Problems) != len(tt.want) {
			t.Errorf("%q: got %d problems, want %d:\n%s", tt.yaml, len(ve.Problems), len(tt.want), got)
		}
	}
}

func TestTokenUnknownKey(t *testing.T) {
	_, err := Load(strings.NewReader("version: 1\nauth:\n  token:\n    key_fil: x\n" + authUpstreams))
	if err == nil || !strings.Contains(err.Error(), "key_fil") {
		t.Errorf("got %v, want a problem naming key_fil", err)
	}
}
