package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func FuzzLoad(f *testing.F) {
	f.Add(fullYAML)
	f.Add(string(defaultYAML))
	f.Add("")
	f.Add("version: 1\nupstreams: [{name: 'localhost:5000', url: 'http://localhost:5000'}]\n")
	f.Add("version: 1\ncache: {tag_ttl: 5 minutes}\nupstreams: [{name: x, aliases: [x]}]\n")
	f.Add("version: 1\nauth: {anonymous: [pull, push], access: []}\nupstreams: [{name: registry.internal}]\n")
	f.Add("version: 1\nauth: {anonymous: []}\nupstreams: [{name: registry.internal}]\n")
	f.Add("version: 1\nauth:\n  access: [{users: ['*'], repositories: ['registry.internal/**', '**'], actions: [pull, push]}]\nupstreams: [{name: registry.internal}]\n")
	examples, _ := filepath.Glob(filepath.Join("..", "..", "configs", "*.yaml"))
	for _, p := range examples {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(string(b))
		}
	}
	f.Fuzz(func(t *testing.T, yml string) {
		c, err := Load(strings.NewReader(yml))
		if err != nil {
			if c != nil {
				t.Fatalf("Load: got a config and error %v, want nil config", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Validate after Load: got %v, want nil", err)
		}
		out, err := c.Redacted()
		if err != nil {
			t.Fatalf("Redacted: %v", err)
		}
		back, err := Load(strings.NewReader(string(out)))
		if err != nil {
			t.Fatalf("Load(Redacted()): %v\n%s", err, out)
		}
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("Load(Redacted()): got %+v, want %+v", back, c)
		}
	})
}
