package auth

import (
	"errors"
	"fmt"
	"strings"
)

// ScopeRepository is the one resource type of a Scope cairn grants on.
const ScopeRepository = "repository"

// The bounds of scope parsing: a name as long as distribution allows
// (255), and the scopes one token request or token may carry.
const (
	MaxScopeNameLen = 255
	MaxScopes       = 32
)

// ErrScopeType is the error of a well-formed scope of another resource type
// than repository (registry:catalog:*): ParseScopeParams skips such scopes,
// granting nothing on them, as Docker's token spec has servers do.
var ErrScopeType = errors.New("not a repository scope")

// Scope is one resource scope of Docker token auth,
// "repository:<name>:<actions>": the actions a client asks for, or is
// granted, on one repository. The actions are cairn's: pull, push, delete,
// and replicate (cairn's own, for writes into a mirror namespace); "*"
// reads as all four. Name is the repository as the client wrote it; the
// rules and tokens use canonical names (docker.io/library/alpine), so a
// token endpoint canonicalises names before it issues.
type Scope struct {
	Name    string
	Actions Actions
}

// ParseScope reads one scope. The type must be repository; the name is
// '/'-separated components of lower-case letters, digits, '.', '_' and
// '-', the first of which may also hold a ':' port; actions are
// comma-separated action names (an empty list is the empty set). The name
// is split at the first and last ':', so a host:port name reads right.
func ParseScope(s string) (Scope, error) {
	typ, rest, ok := strings.Cut(s, ":")
	i := strings.LastIndexByte(rest, ':')
	if !ok || i < 0 {
		return Scope{}, fmt.Errorf("scope %.80q: want repository:<name>:<actions>", s)
	}
	name, acts := rest[:i], rest[i+1:]
	if typ != ScopeRepository {
		if !validScopeType(typ) {
			return Scope{}, fmt.Errorf("scope %.80q: bad resource type", s)
		}
		return Scope{}, fmt.Errorf("scope %.80q: %w", s, ErrScopeType)
	}
	if err := checkScopeName(name); err != nil {
		return Scope{}, fmt.Errorf("scope %.80q: %w", s, err)
	}
	set, err := parseScopeActions(acts)
	if err != nil {
		return Scope{}, fmt.Errorf("scope %.80q: %w", s, err)
	}
	return Scope{Name: name, Actions: set}, nil
}

func validScopeType(t string) bool {
	return t != "" && len(t) <= 64 && !strings.ContainsFunc(t, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("()._-", r))
	})
}

func parseScopeActions(s string) (Actions, error) {
	if s == "" {
		return 0, nil
	}
	var set Actions
	for n := range strings.SplitSeq(s, ",") {
		if n == "*" {
			set |= NewActions(Pull, Push, Delete, Replicate)
			continue
		}
		a, err := ParseAction(n)
		if err != nil {
			return 0, err
		}
		set |= Actions(a)
	}
	return set, nil
}

// checkScopeName: non-empty components of [a-z0-9._-], a ':' allowed in
// the first (a host's port), at most MaxScopeNameLen bytes. Such a name
// holds no space, comma or quote, so scopes join and quote safely.
func checkScopeName(name string) error {
	if name == "" || len(name) > MaxScopeNameLen {
		return fmt.Errorf("repository name of %d bytes, want 1 to %d", len(name), MaxScopeNameLen)
	}
	for i, c := range strings.Split(name, "/") {
		if c == "" {
			return errors.New("repository name with an empty path component")
		}
		if strings.ContainsFunc(c, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' || r == ':' && i == 0)
		}) {
			return fmt.Errorf("repository name component %q: only lower-case letters, digits, '.', '_' and '-' (and a port in the first)", c)
		}
	}
	return nil
}

// String formats s as "repository:<name>:<actions>", actions in a fixed
// order (pull,push,delete,replicate), none for the empty set.
func (s Scope) String() string {
	acts := ""
	if s.Actions != 0 {
		acts = s.Actions.String()
	}
	return ScopeRepository + ":" + s.Name + ":" + acts
}

// FormatScopes joins scopes with spaces, as a challenge's scope parameter
// carries several.
func FormatScopes(scopes []Scope) string {
	out := make([]string, len(scopes))
	for i, s := range scopes {
		out[i] = s.String()
	}
	return strings.Join(out, " ")
}

// ParseScopeParams reads the scope query parameters of a token request
// (url.Values["scope"]): each value holds one or more space-separated
// scopes. Scopes of another resource type are skipped; scopes of the same
// name are merged (their actions joined), in first-seen order. More than
// MaxScopes distinct names, or any malformed scope, is an error.
func ParseScopeParams(values []string) ([]Scope, error) {
	var out []Scope
	at := map[string]int{}
	for _, v := range values {
		for f := range strings.FieldsSeq(v) {
			s, err := ParseScope(f)
			if errors.Is(err, ErrScopeType) {
				continue
			}
			if err != nil {
				return nil, err
			}
			if i, ok := at[s.Name]; ok {
				out[i].Actions |= s.Actions
				continue
			}
			if len(out) == MaxScopes {
				return nil, fmt.Errorf("more than %d scopes", MaxScopes)
			}
			at[s.Name] = len(out)
			out = append(out, s)
		}
	}
	return out, nil
}
