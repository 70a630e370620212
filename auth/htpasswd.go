package auth

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// maxHtpasswdSize bounds the htpasswd file read: about 200,000 entries.
const maxHtpasswdSize = 16 << 20

// bcryptAlphabet is bcrypt's base64 alphabet, the characters of a hash's
// salt and checksum.
const bcryptAlphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// Htpasswd is the content of an htpasswd file: users and their bcrypt
// hashes. It is immutable once parsed and safe for concurrent use. It never
// prints its hashes, whatever the fmt verb.
type Htpasswd struct {
	users map[string]entry
}

type entry struct {
	hash []byte
	cost int
}

// LoadHtpasswd reads the htpasswd file at path; see ParseHtpasswd.
func LoadHtpasswd(path string) (*Htpasswd, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("htpasswd: %w", err)
	}
	defer f.Close()
	h, err := ParseHtpasswd(f)
	if err != nil {
		return nil, fmt.Errorf("htpasswd %s: %w", path, err)
	}
	return h, nil
}

// ParseHtpasswd reads htpasswd lines, `user:hash`, as `htpasswd -B` writes
// them. Only bcrypt hashes ($2y$, $2a$, $2b$) are accepted. Blank lines and
// lines starting with '#' are skipped; surrounding white space and a
// trailing '\r' are ignored. Every bad line is reported, at once, by its line
// number and user; a hash is never quoted. A user listed twice is an error,
// and so are users called "*" (AnyUser) and "anonymous" (Anonymous).
func ParseHtpasswd(r io.Reader) (*Htpasswd, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxHtpasswdSize+1))
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if len(data) > maxHtpasswdSize {
		return nil, fmt.Errorf("larger than %d bytes", maxHtpasswdSize)
	}
	h := &Htpasswd{users: map[string]entry{}}
	firstAt := map[string]int{}
	var errs []error
	for i, line := range strings.Split(string(data), "\n") {
		n := i + 1
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("line %d: want user:bcrypt-hash", n))
			continue
		case !validUser(user):
			errs = append(errs, fmt.Errorf("line %d: the user name is empty, not UTF-8 or holds a control character", n))
			continue
		case user == AnyUser:
			errs = append(errs, fmt.Errorf("line %d: the user name %q is reserved: access rules use it for any user", n, AnyUser))
			continue
		case user == Anonymous:
			errs = append(errs, fmt.Errorf("line %d: the user name %q is reserved: access rules use it for every client, with or without credentials", n, Anonymous))
			continue
		case firstAt[user] != 0:
			errs = append(errs, fmt.Errorf("line %d: user %q is already defined at line %d", n, user, firstAt[user]))
			continue
		}
		firstAt[user] = n
		cost, err := checkBcrypt(hash)
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: user %q: %w", n, user, err))
			continue
		}
		h.users[user] = entry{hash: []byte(hash), cost: cost}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return h, nil
}

// checkBcrypt returns the cost of a well-formed bcrypt hash, or says what is
// wrong with it without quoting it.
func checkBcrypt(hash string) (int, error) {
	switch {
	case !strings.HasPrefix(hash, "$2y$") && !strings.HasPrefix(hash, "$2a$") && !strings.HasPrefix(hash, "$2b$"):
		return 0, errors.New("not a bcrypt hash: want $2y$, $2a$ or $2b$ (make entries with htpasswd -B)")
	case len(hash) != 60:
		return 0, fmt.Errorf("a malformed bcrypt hash of %d characters, want 60", len(hash))
	case strings.Trim(hash[4:6], "0123456789") != "" || hash[6] != '$' || strings.Trim(hash[7:], bcryptAlphabet) != "":
		return 0, errors.New("a malformed bcrypt hash: want $2y$NN$ and 53 characters of bcrypt's base64")
	}
	cost, err := bcrypt.Cost([]byte(hash))
	if err != nil {
		// The cost is out of range; the error quotes only the cost.
		return 0, fmt.Errorf("a malformed bcrypt hash: %w", err)
	}
	return cost, nil
}

// Users returns the user names, sorted.
func (h *Htpasswd) Users() []string {
	users := make([]string, 0, len(h.users))
	for u := range h.users {
		users = append(users, u)
	}
	slices.Sort(users)
	return users
}

// String describes h without its hashes.
func (h *Htpasswd) String() string { return fmt.Sprintf("htpasswd(%d users)", len(h.users)) }

// GoString is String, so %#v does not print the hashes either.
func (h *Htpasswd) GoString() string { return h.String() }

// commonCost is the bcrypt cost most entries use (the higher on a tie), or
// bcrypt.DefaultCost for an empty file.
func (h *Htpasswd) commonCost() int {
	count := map[int]int{}
	best := bcrypt.DefaultCost
	for _, e := range h.users {
		count[e.cost]++
		if c := count[e.cost]; c > count[best] || (c == count[best] && e.cost > best) {
			best = e.cost
		}
	}
	return best
}
