package auth

import (
	"fmt"
	"strings"
)

// Action is one thing a client may do to a repository.
type Action uint8

// The actions, as the config names them. The registry decides which one a
// request needs: a write into a hosted namespace needs Push, a write into a
// mirror namespace needs Replicate (only replication and import write
// there), a manifest or blob DELETE needs Delete.
const (
	Pull      Action = 1 << iota // read manifests, blobs, tags, referrers
	Push                         // upload blobs and manifests, move tags
	Delete                       // delete manifests, blobs and tags
	Replicate                    // write into a mirror namespace
)

// allActions lists the actions in the order String and the errors use.
var allActions = [...]struct {
	a    Action
	name string
}{{Pull, "pull"}, {Push, "push"}, {Delete, "delete"}, {Replicate, "replicate"}}

// ActionNames returns the name of every action, in a fixed order.
func ActionNames() []string {
	names := make([]string, len(allActions))
	for i, x := range allActions {
		names[i] = x.name
	}
	return names
}

// ParseAction reads one action name (lower case, as in the config).
func ParseAction(s string) (Action, error) {
	for _, x := range allActions {
		if x.name == s {
			return x.a, nil
		}
	}
	return 0, fmt.Errorf("unknown action %q, want pull, push, delete or replicate", s)
}

// String returns the action's config name, or "action(N)" for a value that
// is not one action.
func (a Action) String() string {
	for _, x := range allActions {
		if x.a == a {
			return x.name
		}
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// valid reports whether a is one action (not 0, not a combination).
func (a Action) valid() bool {
	for _, x := range allActions {
		if x.a == a {
			return true
		}
	}
	return false
}

// Actions is a set of actions. The zero value is the empty set; sets combine
// with |, like NewActions(Pull) | NewActions(Push).
type Actions uint8

// NewActions returns the set holding as.
func NewActions(as ...Action) Actions {
	var s Actions
	for _, a := range as {
		s |= Actions(a)
	}
	return s
}

// ParseActions reads a list of action names into a set; an empty or nil
// list is the empty set. The error names the first unknown action.
func ParseActions(names []string) (Actions, error) {
	var s Actions
	for _, n := range names {
		a, err := ParseAction(n)
		if err != nil {
			return 0, err
		}
		s |= Actions(a)
	}
	return s, nil
}

// Has reports whether the set holds a.
func (s Actions) Has(a Action) bool { return a != 0 && Actions(a)&s == Actions(a) }

// String lists the set's actions as in the config, "pull,push"; the empty
// set is "none".
func (s Actions) String() string {
	var names []string
	for _, x := range allActions {
		if s.Has(x.a) {
			names = append(names, x.name)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ",")
}
