package auth

import (
	"fmt"
	"regexp"
	"strings"
)

// maxGlobLen bounds a repository glob; canonical names are shorter.
const maxGlobLen = 512

// glob matches canonical repository names (<namespace>/<repo>).
type glob struct {
	re *regexp.Regexp
}

// parseGlob reads a repository glob. Components are separated by '/'; a
// component "**" matches any number of components, none included; a '*'
// inside a component matches any run of characters but '/'. Other
// characters must be ones a canonical name can hold: lower-case letters,
// digits, '.', '_', '-', and ':' (a namespace's port). "**" must be a whole
// component, and no component may be empty.
func parseGlob(s string) (glob, error) {
	if s == "" {
		return glob{}, fmt.Errorf("empty repository glob")
	}
	if len(s) > maxGlobLen {
		return glob{}, fmt.Errorf("repository glob of %d bytes, want at most %d", len(s), maxGlobLen)
	}
	comps := strings.Split(s, "/")
	for _, c := range comps {
		if err := checkGlobComponent(c); err != nil {
			return glob{}, fmt.Errorf("repository glob %q: %w", s, err)
		}
	}
	re, err := regexp.Compile(globPattern(collapse(comps)))
	if err != nil { // unreachable: the pattern quotes every literal
		return glob{}, fmt.Errorf("repository glob %q: %w", s, err)
	}
	return glob{re: re}, nil
}

func checkGlobComponent(c string) error {
	switch {
	case c == "":
		return fmt.Errorf("an empty path component (a leading, trailing or double '/')")
	case c != "**" && strings.Contains(c, "**"):
		return fmt.Errorf("component %q: \"**\" must be a whole path component", c)
	}
	for _, r := range c {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', strings.ContainsRune("._-:*", r):
		case r >= 'A' && r <= 'Z':
			return fmt.Errorf("component %q: upper case, but canonical names are lower case", c)
		default:
			return fmt.Errorf("component %q: %q cannot appear in a repository name", c, r)
		}
	}
	return nil
}

// collapse replaces each run of "**" components by one: they match the same.
func collapse(comps []string) []string {
	out := comps[:0:0]
	for i, c := range comps {
		if c != "**" || i == 0 || comps[i-1] != "**" {
			out = append(out, c)
		}
	}
	return out
}

// globPattern translates checked components, with no two "**" in a row, to
// an anchored regexp. A "**" that ends the glob also matches the name that
// ends just before it ("a/**" matches "a"), as pin globs do.
func globPattern(comps []string) string {
	var b strings.Builder
	b.WriteString("^")
	afterName := false // the last thing written matches a component
	for i, c := range comps {
		last := i == len(comps)-1
		switch {
		case c == "**" && last && !afterName:
			b.WriteString(".*") // the glob is only "**"
		case c == "**" && last:
			b.WriteString("(?:/[^/]+)*")
		case c == "**":
			if afterName {
				b.WriteString("/")
			}
			b.WriteString("(?:[^/]+/)*")
			afterName = false
		default:
			if afterName {
				b.WriteString("/")
			}
			for j, lit := range strings.Split(c, "*") {
				if j > 0 {
					b.WriteString("[^/]*")
				}
				b.WriteString(regexp.QuoteMeta(lit))
			}
			afterName = true
		}
	}
	b.WriteString("$")
	return b.String()
}

// match reports whether canonical name repo matches the glob.
func (g glob) match(repo string) bool { return g.re.MatchString(repo) }
