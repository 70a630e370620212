package auth

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// hashOf returns a real bcrypt hash of password at the cheapest cost.
func hashOf(t testing.TB, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func TestParseHtpasswd(t *testing.T) {
	a, b, c := hashOf(t, "pw-a"), hashOf(t, "pw-b"), hashOf(t, "pw-c")
	file := "# users of the CI\n" +
		"\n" +
		"ci:" + a + "\r\n" + // written on Windows
		"  replicator:" + "$2y$" + b[4:] + "  \n" + // htpasswd -B writes $2y$
		"   # indented comment\n" +
		"jürgen:" + "$2b$" + c[4:] // no final newline
	h, err := ParseHtpasswd(strings.NewReader(file))
	if err != nil {
		t.Fatalf("ParseHtpasswd: %v", err)
	}
	if got, want := h.Users(), []string{"ci", "jürgen", "replicator"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Users: got %v, want %v", got, want)
	}
	auth, err := NewAuthenticator(h)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user, pw string
		want     bool
	}{
		{"ci", "pw-a", true},
		{"replicator", "pw-b", true},
		{"jürgen", "pw-c", true},
		{"ci", "pw-b", false},
	} {
		if got := auth.Check(tc.user, tc.pw); got != tc.want {
			t.Errorf("Check(%q, %q): got %v, want %v", tc.user, tc.pw, got, tc.want)
		}
	}
}

func TestParseHtpasswdEmpty(t *testing.T) {
	for _, file := range []string{"", "\n\n", "# nobody yet\n"} {
		h, err := ParseHtpasswd(strings.NewReader(file))
		if err != nil || len(h.Users()) != 0 {
			t.Errorf("ParseHtpasswd(%q): got %v, %v; want no users, no error", file, h, err)
		}
	}
}

func TestParseHtpasswdProblems(t *testing.T) {
	good := hashOf(t, "pw")
	for _, tc := range []struct {
		name, line, want string
	}{
		{"apr1", "bob:$apr1$Ke1Fq0wI$Wc9FzQ1wHfWmEsn6ZCmSi/", `line 2: user "bob": not a bcrypt hash: want $2y$, $2a$ or $2b$`},
		{"sha1", "bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", `line 2: user "bob": not a bcrypt hash`},
		{"crypt", "bob:rqXexS6ZhobKA", `line 2: user "bob": not a bcrypt hash`},
		{"plain text", "bob:hunter2", `line 2: user "bob": not a bcrypt hash`},
		{"old bcrypt version", "bob:$2$" + good[4:], `line 2: user "bob": not a bcrypt hash`},
		{"truncated", "bob:" + good[:59], `line 2: user "bob": a malformed bcrypt hash of 59 characters, want 60`},
		{"extra field", "bob:" + good + ":comment", `line 2: user "bob": a malformed bcrypt hash of 68 characters, want 60`},
		{"bad cost", "bob:" + good[:4] + "xx" + good[6:], `line 2: user "bob": a malformed bcrypt hash: want $2y$NN$`},
		{"cost too high", "bob:" + good[:4] + "32" + good[6:], `line 2: user "bob": a malformed bcrypt hash: crypto/bcrypt: cost 32 is outside allowed inclusive range 4..31`},
		{"bad alphabet", "bob:" + good[:59] + "!", `line 2: user "bob": a malformed bcrypt hash: want $2y$NN$`},
		{"no colon", "hunter2", "line 2: want user:bcrypt-hash"},
		{"empty user", ":" + good, "line 2: the user name is empty"},
		{"control character", "b\x01b:" + good, "line 2: the user name is empty, not UTF-8 or holds a control character"},
		{"reserved user", "*:" + good, `line 2: the user name "*" is reserved`},
		{"reserved anonymous", "anonymous:" + good, `line 2: the user name "anonymous" is reserved`},
		{"duplicate", "ci:" + good, `line 2: user "ci" is already defined at line 1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseHtpasswd(strings.NewReader("ci:" + good + "\n" + tc.line + "\n"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			secret := tc.line[strings.Index(tc.line, ":")+1:]
			if len(secret) > 4 && strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), good[7:]) {
				t.Errorf("error %q quotes a hash or password", err)
			}
		})
	}
}

// A reserved name is one problem per line, nothing more: it is never
// taken for a user, so a second line of it is not a duplicate.
func TestReservedUserNamesAreOneProblemEach(t *testing.T) {
	good := hashOf(t, "pw")
	_, err := ParseHtpasswd(strings.NewReader("*:" + good + "\n*:" + good + "\nanonymous:x\n"))
	if err == nil {
		t.Fatal("got no error")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 3 || strings.Contains(err.Error(), "already defined") || strings.Contains(err.Error(), "bcrypt") {
		t.Errorf("got %d problems, want 3, each the reserved name:\n%v", len(lines), err)
	}
}

func TestParseHtpasswdReportsEveryLine(t *testing.T) {
	good := hashOf(t, "pw")
	file := "a:" + good + "\nb:md5\n\nc\na:" + good + "\n"
	_, err := ParseHtpasswd(strings.NewReader(file))
	if err == nil {
		t.Fatal("ParseHtpasswd: got no error")
	}
	want := []string{
		`line 2: user "b": not a bcrypt hash`,
		`line 4: want user:bcrypt-hash`,
		`line 5: user "a" is already defined at line 1`,
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(lines), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("problem %d: got %q, want it to start with %q", i, lines[i], w)
		}
	}
}

func TestLoadHtpasswd(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(path, []byte("ci:"+hashOf(t, "pw")+"\nbad\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadHtpasswd(path); err == nil || !strings.Contains(err.Error(), "htpasswd "+path+": line 2: want user:bcrypt-hash") {
		t.Errorf("LoadHtpasswd(bad line): got %v, want the path and line number", err)
	}
	if _, err := LoadHtpasswd(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("LoadHtpasswd(missing): got %v, want no such file", err)
	}
	if err := os.WriteFile(path, []byte("ci:"+hashOf(t, "pw")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := LoadHtpasswd(path)
	if err != nil || !reflect.DeepEqual(h.Users(), []string{"ci"}) {
		t.Errorf("LoadHtpasswd: got %v, %v; want user ci", h, err)
	}
}

func TestParseHtpasswdTooLarge(t *testing.T) {
	big := strings.NewReader("# a long comment " + strings.Repeat("x", maxHtpasswdSize))
	if _, err := ParseHtpasswd(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("ParseHtpasswd(%d bytes): got %v, want too large", big.Size(), err)
	}
}

func TestHtpasswdPrintsNoHash(t *testing.T) {
	hash := hashOf(t, "pw")
	h, err := ParseHtpasswd(strings.NewReader("ci:" + hash + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewAuthenticator(h)
	if err != nil {
		t.Fatal(err)
	}
	a.Check("ci", "pw") // remember a success too
	for _, v := range []any{h, a} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			if out := fmt.Sprintf(verb, v); strings.Contains(out, hash[7:]) || strings.Contains(out, "$2a$") {
				t.Errorf("Sprintf(%s, %T): got %q, which holds a hash", verb, v, out)
			}
		}
	}
	if got, want := fmt.Sprint(a), "auth.Authenticator(htpasswd(1 users))"; got != want {
		t.Errorf("Sprint(Authenticator): got %q, want %q", got, want)
	}
}

func TestCommonCost(t *testing.T) {
	for _, tc := range []struct {
		costs []int
		want  int
	}{
		{nil, bcrypt.DefaultCost},
		{[]int{4}, 4},
		{[]int{12, 4, 12}, 12},
		{[]int{4, 5, 5, 4}, 5},
		{[]int{6, 5, 4, 4}, 4},
	} {
		h := &Htpasswd{users: map[string]entry{}}
		for i, c := range tc.costs {
			h.users[fmt.Sprint(i)] = entry{cost: c}
		}
		if got := h.commonCost(); got != tc.want {
			t.Errorf("commonCost(%v): got %d, want %d", tc.costs, got, tc.want)
		}
	}
}
