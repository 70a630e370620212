package config

import (
	"reflect"
	"strings"
	"testing"
)

// roundTrip checks that c's redacted YAML loads back to an equal config.
func roundTrip(t *testing.T, c *Config) {
	t.Helper()
	out, err := c.Redacted()
	if err != nil {
		t.Fatalf("Redacted: %v", err)
	}
	back, err := Load(strings.NewReader(string(out)))
	if err != nil {
		t.Fatalf("Load(Redacted()): %v\n%s", err, out)
	}
	if !reflect.DeepEqual(back, c) {
		t.Fatalf("Load(Redacted()): got %+v, want %+v\n%s", back, c, out)
	}
}

func TestRedactedRoundTrip(t *testing.T) {
	// Empty lists whose key is omitempty must load as no key, or they come
	// back from Redacted as nil.
	const empties = "version: 1\ncache: {pin: [], pin_platforms: []}\nauth: {access: []}\nupstreams: [{name: ghcr.io, aliases: []}]\n"
	for name, c := range map[string]*Config{"default": Default(), "full": mustLoad(t, fullYAML), "empty lists": mustLoad(t, empties)} {
		t.Run(name, func(t *testing.T) { roundTrip(t, c) })
	}
}

func TestRedactedCopyRedactsSecrets(t *testing.T) {
	type inner struct {
		Token string `secret:"true"`
		Name  string
	}
	type outer struct {
		Key    string `secret:"true"`
		Empty  string `secret:"true"`
		Items  []inner
		Ptr    *inner
		ByName map[string]inner
	}
	in := outer{
		Key:    "k",
		Items:  []inner{{Token: "t1", Name: "a"}},
		Ptr:    &inner{Token: "t2", Name: "b"},
		ByName: map[string]inner{"c": {Token: "t3", Name: "c"}},
	}
	got := redactedCopy(reflect.ValueOf(in)).Interface().(outer)
	want := outer{
		Key:    Redaction,
		Items:  []inner{{Token: Redaction, Name: "a"}},
		Ptr:    &inner{Token: Redaction, Name: "b"},
		ByName: map[string]inner{"c": {Token: Redaction, Name: "c"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if in.Key != "k" || in.Items[0].Token != "t1" || in.Ptr.Token != "t2" || in.ByName["c"].Token != "t3" {
		t.Errorf("original: got %+v, want it unchanged", in)
	}
}
