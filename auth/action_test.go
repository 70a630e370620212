package auth

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseAction(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Action
		bad  bool
	}{
		{"pull", Pull, false},
		{"push", Push, false},
		{"delete", Delete, false},
		{"replicate", Replicate, false},
		{"Pull", 0, true},
		{"pull ", 0, true},
		{"", 0, true},
		{"*", 0, true},
		{"admin", 0, true},
	} {
		got, err := ParseAction(tc.in)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("ParseAction(%q): got %v, %v; want %v, bad=%v", tc.in, got, err, tc.want, tc.bad)
		}
		if err != nil && !strings.Contains(err.Error(), "want pull, push, delete or replicate") {
			t.Errorf("ParseAction(%q): got error %q, want it to list the actions", tc.in, err)
		}
	}
}

func TestParseActions(t *testing.T) {
	for _, tc := range []struct {
		in      []string
		want    Actions
		wantErr string
	}{
		{nil, 0, ""},
		{[]string{}, 0, ""},
		{[]string{"pull"}, NewActions(Pull), ""},
		{[]string{"pull", "push", "pull"}, NewActions(Pull, Push), ""},
		{[]string{"pull", "push", "delete", "replicate"}, NewActions(Pull, Push, Delete, Replicate), ""},
		{[]string{"pull", "pusj"}, 0, `unknown action "pusj"`},
	} {
		got, err := ParseActions(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseActions(%q): got error %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseActions(%q): got %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestActionsSet(t *testing.T) {
	s := NewActions(Pull, Delete)
	for _, tc := range []struct {
		a    Action
		want bool
	}{{Pull, true}, {Push, false}, {Delete, true}, {Replicate, false}, {0, false}, {Pull | Push, false}} {
		if got := s.Has(tc.a); got != tc.want {
			t.Errorf("%v.Has(%v): got %v, want %v", s, tc.a, got, tc.want)
		}
	}
	for _, tc := range []struct {
		s    Actions
		want string
	}{
		{0, "none"},
		{NewActions(Push, Pull), "pull,push"},
		{NewActions(Replicate) | NewActions(Delete), "delete,replicate"},
	} {
		if got := tc.s.String(); got != tc.want {
			t.Errorf("Actions(%d).String(): got %q, want %q", tc.s, got, tc.want)
		}
	}
	if got, want := Action(3).String(), "action(3)"; got != want {
		t.Errorf("Action(3).String(): got %q, want %q", got, want)
	}
	if got, want := ActionNames(), []string{"pull", "push", "delete", "replicate"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ActionNames: got %v, want %v", got, want)
	}
	for _, n := range ActionNames() {
		if a, err := ParseAction(n); err != nil || a.String() != n {
			t.Errorf("ParseAction(%q).String(): got %v, %v; want %q", n, a, err, n)
		}
	}
}
