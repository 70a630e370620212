package auth

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// Bearer is a Docker token auth challenge: where to get a token (Realm),
// for which service, and the scopes the request needed.
type Bearer struct {
	Realm   string
	Service string
	Scopes  []Scope
}

// String formats the WWW-Authenticate value
// `Bearer realm="...",service="...",scope="..."`; service and scope are
// left out when empty. Values are quoted strings: quotes and backslashes
// are escaped, control characters dropped.
func (b Bearer) String() string {
	var sb strings.Builder
	sb.WriteString(`Bearer realm=`)
	sb.WriteString(quote(b.Realm))
	if b.Service != "" {
		sb.WriteString(`,service=` + quote(b.Service))
	}
	if len(b.Scopes) > 0 {
		sb.WriteString(`,scope=` + quote(FormatScopes(b.Scopes)))
	}
	return sb.String()
}

var quoter = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

// quote makes an RFC 9110 quoted-string of s, without control characters.
func quote(s string) string {
	printable := strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	return `"` + quoter.Replace(printable) + `"`
}

// ParseBearer reads a Bearer challenge (see ParseChallenge): the scheme
// must be Bearer and realm set; the scope parameter, when present, must
// hold valid scopes (ParseScopeParams).
func ParseBearer(header string) (Bearer, error) {
	scheme, params, err := ParseChallenge(header)
	if err != nil {
		return Bearer{}, err
	}
	if !strings.EqualFold(scheme, "Bearer") {
		return Bearer{}, fmt.Errorf("challenge scheme %.40q, want Bearer", scheme)
	}
	b := Bearer{Realm: params["realm"], Service: params["service"]}
	if b.Realm == "" {
		return Bearer{}, errors.New("bearer challenge without a realm")
	}
	if s, ok := params["scope"]; ok {
		if b.Scopes, err = ParseScopeParams([]string{s}); err != nil {
			return Bearer{}, err
		}
	}
	return b, nil
}

// ParseChallenge reads one challenge of a WWW-Authenticate value (RFC
// 9110 section 11): a scheme token, then comma-separated name=value
// parameters whose value is a token or a quoted-string. Parameter names are
// returned lower-case; a repeated name, a header longer than MaxHeaderLen
// or a control character is an error. A value holding several challenges
// is an error too: cairn sends one.
func ParseChallenge(header string) (scheme string, params map[string]string, err error) {
	if len(header) > MaxHeaderLen {
		return "", nil, fmt.Errorf("challenge of %d bytes, want at most %d", len(header), MaxHeaderLen)
	}
	scheme, rest, _ := strings.Cut(header, " ")
	if !isToken(scheme) {
		return "", nil, errors.New("challenge without a scheme token")
	}
	params = map[string]string{}
	for rest = strings.TrimLeft(rest, " \t"); rest != ""; {
		var name, value string
		if name, value, rest, err = nextParam(rest); err != nil {
			return "", nil, err
		}
		if _, dup := params[name]; dup {
			return "", nil, fmt.Errorf("challenge parameter %q repeated", name)
		}
		params[name] = value
	}
	return scheme, params, nil
}

// nextParam reads `name=value` and the separator after it from s.
func nextParam(s string) (name, value, rest string, err error) {
	eq := strings.IndexByte(s, '=')
	if eq < 0 || !isToken(strings.TrimRight(s[:eq], " \t")) {
		return "", "", "", errors.New("challenge parameter without a name=value")
	}
	name = strings.ToLower(strings.TrimRight(s[:eq], " \t"))
	s = strings.TrimLeft(s[eq+1:], " \t")
	if strings.HasPrefix(s, `"`) {
		value, s, err = unquote(s)
		if err != nil {
			return "", "", "", err
		}
	} else {
		end := strings.IndexAny(s, ", \t")
		if end < 0 {
			end = len(s)
		}
		value, s = s[:end], s[end:]
		if !isToken(value) {
			return "", "", "", fmt.Errorf("challenge parameter %q: value is not a token", name)
		}
	}
	s = strings.TrimLeft(s, " \t")
	if s != "" {
		if s[0] != ',' {
			return "", "", "", fmt.Errorf("challenge parameter %q: want ',' after the value", name)
		}
		s = strings.TrimLeft(s[1:], " \t")
		if s == "" {
			return "", "", "", errors.New("challenge ends with ','")
		}
	}
	return name, value, s, nil
}

// unquote reads a quoted-string at the start of s.
func unquote(s string) (value, rest string, err error) {
	var sb strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			return sb.String(), s[i+1:], nil
		case c == '\\' && i+1 < len(s):
			i++
			if isCtl(s[i]) {
				return "", "", errors.New("control character in a quoted string")
			}
			sb.WriteByte(s[i])
		case isCtl(c):
			return "", "", errors.New("control character in a quoted string")
		default:
			sb.WriteByte(c)
		}
	}
	return "", "", errors.New("unterminated quoted string")
}

func isCtl(c byte) bool { return c < 0x20 && c != '\t' || c == 0x7f }

// isToken reports an RFC 9110 token: one or more tchars.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
