package auth

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseScope(t *testing.T) {
	tests := []struct {
		in   string
		want Scope
		err  bool
	}{
		{"repository:docker.io/library/alpine:pull", Scope{"docker.io/library/alpine", NewActions(Pull)}, false},
		{"repository:ghcr.io/org/app:pull,push", Scope{"ghcr.io/org/app", NewActions(Pull, Push)}, false},
		{"repository:localhost:5000/app:push,pull", Scope{"localhost:5000/app", NewActions(Pull, Push)}, false},
		{"repository:r.internal/a:delete,replicate", Scope{"r.internal/a", NewActions(Delete, Replicate)}, false},
		{"repository:alpine:*", Scope{"alpine", NewActions(Pull, Push, Delete, Replicate)}, false},
		{"repository:alpine:", Scope{"alpine", 0}, false},
		{"repository:alpine", Scope{}, true},
		{"repository::pull", Scope{}, true},
		{"repository:Alpine:pull", Scope{}, true},
		{"repository:a//b:pull", Scope{}, true},
		{"repository:a/b:c/d:pull", Scope{}, true}, // ':' outside the first component
		{"repository:alpine:pull,,push", Scope{}, true},
		{"repository:alpine:steal", Scope{}, true},
		{"repository:a b:pull", Scope{}, true},
		{`repository:a"b:pull`, Scope{}, true},
		{"repository:" + strings.Repeat("a", MaxScopeNameLen+1) + ":pull", Scope{}, true},
		{"", Scope{}, true},
	}
	for _, tt := range tests {
		got, err := ParseScope(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseScope(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestParseScopeOtherType(t *testing.T) {
	if _, err := ParseScope("registry:catalog:*"); !errors.Is(err, ErrScopeType) {
		t.Errorf("got %v, want ErrScopeType", err)
	}
	if _, err := ParseScope("bad type:x:pull"); err == nil || errors.Is(err, ErrScopeType) {
		t.Errorf("got %v, want a malformed-scope error", err)
	}
}

func TestScopeString(t *testing.T) {
	for in, want := range map[string]string{
		"repository:a/b:push,pull":   "repository:a/b:pull,push",
		"repository:a/b:*":           "repository:a/b:pull,push,delete,replicate",
		"repository:a/b:":            "repository:a/b:",
		"repository:h:5000/b:delete": "repository:h:5000/b:delete",
	} {
		s, err := ParseScope(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.String(); got != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
	}
}

func TestParseScopeParams(t *testing.T) {
	got, err := ParseScopeParams([]string{
		"repository:docker.io/library/alpine:pull registry:catalog:*",
		"repository:ghcr.io/o/a:push repository:docker.io/library/alpine:push",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Scope{{"docker.io/library/alpine", NewActions(Pull, Push)}, {"ghcr.io/o/a", NewActions(Push)}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if _, err := ParseScopeParams([]string{"repository:ok:pull", "repository:bad:steal"}); err == nil {
		t.Error("a bad scope among good ones: got no error")
	}
	many := make([]string, MaxScopes+1)
	for i := range many {
		many[i] = "repository:r" + strings.Repeat("x", i) + ":pull"
	}
	if _, err := ParseScopeParams(many); err == nil {
		t.Errorf("%d scopes: got no error", len(many))
	}
}

func FuzzParseScope(f *testing.F) {
	for _, s := range []string{"repository:docker.io/library/alpine:pull,push", "repository:localhost:5000/a:*",
		"registry:catalog:*", "repository:a:", "::", "repository:a:b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseScope(in)
		if err != nil {
			return
		}
		again, err := ParseScope(s.String())
		if err != nil || again != s {
			t.Fatalf("%q -> %q -> %+v, %v; want %+v", in, s.String(), again, err, s)
		}
		if strings.ContainsAny(s.Name, " ,\"\\") {
			t.Fatalf("name %q holds a separator or quote", s.Name)
		}
	})
}
