package config

import (
	"strings"
	"testing"
)

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want ByteSize
		bad  bool
	}{
		{in: "200GiB", want: 200 << 30},
		{in: "1.5KiB", want: 1536},
		{in: "500MB", want: 500e6},
		{in: "1024", want: 1024},
		{in: "10 MiB", want: 10 << 20},
		{in: "7B", want: 7},
		{in: "lots", bad: true},
		{in: "-1GiB", bad: true},
		{in: "", bad: true},
	}
	for _, tt := range tests {
		got, err := ParseByteSize(tt.in)
		if (err != nil) != tt.bad || (!tt.bad && got != tt.want) {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d, bad %v", tt.in, got, err, tt.want, tt.bad)
		}
	}
	if got := ByteSize(200 << 30).String(); got != "200GiB" {
		t.Errorf("String() = %q, want 200GiB", got)
	}
}

func TestEvictionSettings(t *testing.T) {
	c := mustLoad(t, "version: 1\ncache: {max_size: 10GiB}\nupstreams: [{name: docker.io, url: \"https://registry-1.docker.io\"}]\n")
	if c.Cache.MaxSize != 10<<30 || c.Cache.EvictHigh != 0.90 || c.Cache.EvictLow != 0.80 {
		t.Errorf("got max_size %d, high %v, low %v; want 10GiB, 0.9, 0.8", c.Cache.MaxSize, c.Cache.EvictHigh, c.Cache.EvictLow)
	}
	_, err := load(t, "version: 1\ncache: {max_size: huge, evict_high: 0.5, evict_low: 0.7}\nupstreams: [{name: docker.io, url: \"https://registry-1.docker.io\"}]\n")
	for _, want := range []string{"huge", "cache.evict_low"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad eviction settings: error %v does not mention %q", err, want)
		}
	}
}

func TestPinPlatforms(t *testing.T) {
	base := "version: 1\nupstreams: [{name: docker.io, url: \"https://registry-1.docker.io\"}]\n"
	if c := mustLoad(t, base+"cache: {pin_platforms: [linux/amd64, linux/arm64/v8]}\n"); len(c.Cache.PinPlatforms) != 2 {
		t.Errorf("pin_platforms: got %v", c.Cache.PinPlatforms)
	}
	if _, err := load(t, base+"cache: {pin_platforms: [amd64, linux//x]}\n"); err == nil ||
		!strings.Contains(err.Error(), "cache.pin_platforms[0]") || !strings.Contains(err.Error(), "cache.pin_platforms[1]") {
		t.Errorf("bad platforms: %v, want both named", err)
	}
}
