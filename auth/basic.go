package auth

import (
	"encoding/base64"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxHeaderLen bounds the Authorization header ParseBasic reads. bcrypt
// reads only 72 bytes of a password, so a longer header is an attack or a
// mistake, never a credential.
const MaxHeaderLen = 4096

// ParseBasic reads the credentials of an HTTP Basic Authorization header
// value (RFC 7617): the scheme "Basic" in any case, one space (as every
// client sends, and net/http reads), and the standard, padded base64 of
// "user:password", with no padding bits set. It is strict: anything
// else, a header longer than MaxHeaderLen, an empty user, or a user holding
// a control character or invalid UTF-8 is not ok. The user is everything
// before the first ':', so it never holds one; the password may.
//
// It reports only ok or not, never why: a reason could quote the secret.
func ParseBasic(header string) (user, password string, ok bool) {
	if len(header) > MaxHeaderLen {
		return "", "", false
	}
	scheme, token, found := strings.Cut(header, " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	// The decoder skips '\r' and '\n'; a header value holds neither.
	if token == "" || strings.ContainsAny(token, "\r\n") {
		return "", "", false
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(token)
	if err != nil {
		return "", "", false
	}
	user, password, found = strings.Cut(string(raw), ":")
	if !found || !validUser(user) {
		return "", "", false
	}
	return user, password, true
}

// validUser: a non-empty UTF-8 name without ':' or control characters, the
// names an htpasswd file and a Basic header can both carry.
func validUser(u string) bool {
	if u == "" || !utf8.ValidString(u) {
		return false
	}
	return !strings.ContainsFunc(u, func(r rune) bool { return r == ':' || unicode.IsControl(r) })
}

// Challenge returns the WWW-Authenticate value that asks for Basic
// credentials in realm: `Basic realm="cairn", charset="UTF-8"`. Quotes and
// backslashes in realm are escaped, control characters dropped.
func Challenge(realm string) string {
	printable := strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, realm)
	quoted := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(printable)
	return `Basic realm="` + quoted + `", charset="UTF-8"`
}
