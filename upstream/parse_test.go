package upstream

import (
	"testing"
)

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in               string
		wantStart, total int64
		wantErr          bool
	}{
		{"bytes 100-199/200", 100, 200, false},
		{"bytes 0-0/1", 0, 1, false},
		{"bytes 5-9/*", 5, -1, false},
		{"bytes 5-9/9", 0, 0, true},
		{"bytes 9-5/20", 0, 0, true},
		{"bytes */20", 0, 0, true},
		{"100-199/200", 0, 0, true},
		{"", 0, 0, true},
		{"bytes -1-5/20", 0, 0, true},
	}
	for _, tt := range tests {
		start, total, err := parseContentRange(tt.in)
		if (err != nil) != tt.wantErr || start != tt.wantStart || total != tt.total {
			t.Errorf("parseContentRange(%q): got %d, %d, %v; want %d, %d, err=%v", tt.in, start, total, err, tt.wantStart, tt.total, tt.wantErr)
		}
	}
}

func TestHasNextLink(t *testing.T) {
	tests := []struct {
		in   []string
		want bool
	}{
		{nil, false},
		{[]string{`</v2/a/tags/list?n=2&last=b>; rel="next"`}, true},
		{[]string{`</v2/a/tags/list?n=2&last=b>; rel=next`}, true},
		{[]string{`<https://x/p>; rel="prev", </v2/a/tags/list?last=b>; rel="next"`}, true},
		{[]string{`<https://x/p>; rel="prev"`}, false},
		{[]string{`<https://x/next>`}, false},
	}
	for _, tt := range tests {
		if got := hasNextLink(tt.in); got != tt.want {
			t.Errorf("hasNextLink(%q): got %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		namespace, url string
		opts           []Option
		wantErr        bool
	}{
		{"docker.io", "https://registry-1.docker.io", nil, false},
		{"local:5001", "http://127.0.0.1:5001/", nil, false},
		{"", "https://ghcr.io", nil, true},
		{"ghcr.io", "ftp://ghcr.io", nil, true},
		{"ghcr.io", "ghcr.io", nil, true},
		{"ghcr.io", "https://ghcr.io/v2/prefix", nil, true},
		{"ghcr.io", "https://user:pw@ghcr.io", nil, true},
		{"ghcr.io", "https://ghcr.io", []Option{WithRetries(-1)}, true},
		{"ghcr.io", "https://ghcr.io", []Option{WithBasic("a", "b"), WithKeychain(&fakeKeychain{})}, true},
		{"Not A Host", "https://ghcr.io", []Option{WithKeychain(&fakeKeychain{})}, true},
	}
	for _, tt := range tests {
		_, err := New(tt.namespace, tt.url, tt.opts...)
		if (err != nil) != tt.wantErr {
			t.Errorf("New(%q, %q): got %v, want error %v", tt.namespace, tt.url, err, tt.wantErr)
		}
	}
}

func TestParseRef(t *testing.T) {
	tests := []struct {
		ref     string
		want    string
		wantErr bool
	}{
		{"latest", "", false},
		{"v1.2.3-rc_1", "", false},
		{"sha256:" + hex64, "sha256:" + hex64, false},
		{"sha256:abc", "", true},
		{"sha1:" + hex64, "", true},
		{"-bad", "", true},
		{"", "", true},
	}
	for _, tt := range tests {
		got, err := parseRef(tt.ref)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("parseRef(%q): got %q, %v; want %q, err=%v", tt.ref, got, err, tt.want, tt.wantErr)
		}
	}
}

const hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
