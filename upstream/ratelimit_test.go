package upstream

import (
	"testing"
	"time"
)

func TestParseRateLimit(t *testing.T) {
	tests := []struct {
		in     string
		n      int
		window time.Duration
		ok     bool
	}{
		{"100;w=21600", 100, 6 * time.Hour, true},
		{" 76 ; w=21600 ", 76, 6 * time.Hour, true},
		{"5", 5, 0, true},
		{"0;w=60", 0, time.Minute, true},
		{"", 0, 0, false},
		{"-1;w=60", 0, 0, false},
		{"lots", 0, 0, false},
	}
	for _, tt := range tests {
		n, w, ok := parseRateLimit(tt.in)
		if n != tt.n || w != tt.window || ok != tt.ok {
			t.Errorf("parseRateLimit(%q) = %d, %v, %v; want %d, %v, %v", tt.in, n, w, ok, tt.n, tt.window, tt.ok)
		}
	}
}
