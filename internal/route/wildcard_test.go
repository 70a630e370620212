package route

import (
	"strings"
	"testing"
)

const ecr = "*.dkr.ecr.*.amazonaws.com"

func TestParsePattern(t *testing.T) {
	for _, ok := range []string{ecr, "*.pkg.dev", "*.azurecr.io", "*.registry.example:5000"} {
		if _, err := ParsePattern(ok); err != nil {
			t.Errorf("ParsePattern(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{
		"*", "*.com", "registry.*", "a.*.*", "*.example.*", // too broad
		"ecr*.example.com", "*-docker.pkg.dev", // * inside a label
		"*.Example.com", // case
		"registry.example.com", "*.example.com:*", "*.example.com:99999",
		"*.exa_mple.com", "*..example.com", "*.example.com/x", "*@example.com",
	} {
		if _, err := ParsePattern(bad); err == nil {
			t.Errorf("ParsePattern(%q) accepted", bad)
		}
	}
}

// TestPatternRefusesHostileHosts: only hosts of the configured shape are
// reached, whatever a client puts in the first path component or ?ns=.
func TestPatternRefusesHostileHosts(t *testing.T) {
	p, err := ParsePattern(ecr)
	if err != nil {
		t.Fatal(err)
	}
	good := "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	if !p.Match(good) {
		t.Fatalf("%s does not match %s", good, ecr)
	}
	for _, h := range []string{
		"evil.com#.dkr.ecr.us-east-1.amazonaws.com",
		"evil.com/.dkr.ecr.us-east-1.amazonaws.com",
		"user@123.dkr.ecr.us-east-1.amazonaws.com",
		"123.dkr.ecr.us-east-1.amazonaws.com.evil.com",
		"evil.com?.dkr.ecr.us-east-1.amazonaws.com",
		"a.b.dkr.ecr.us-east-1.amazonaws.com", // * is one label, not several
		".dkr.ecr.us-east-1.amazonaws.com",
		"123.dkr.ecr.us-east-1.amazonaws.com:443", // a port the pattern has not
		"123.DKR.ECR.us-east-1.amazonaws.com",     // case tricks
		"123.dkr.ecr.us-east-1.amazonaws.com.",
		strings.Repeat("a", 64) + ".dkr.ecr.us-east-1.amazonaws.com", // over-long label
		"-x.dkr.ecr.us-east-1.amazonaws.com",
		"10.0.0.1", "127.0.0.1:5000", "[::1]",
		"123.dkr.ecr.us-east-1.amazonaws.com\x00",
		"123%2edkr.ecr.us-east-1.amazonaws.com",
	} {
		if p.Match(h) {
			t.Errorf("%q matched %s", h, ecr)
		}
	}
	// A pattern of only wildcards and literals never matches an IP literal.
	ipish, err := ParsePattern("*.*.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if ipish.Match("10.0.0.1") {
		t.Error("an IPv4 literal matched a wildcard")
	}
}

func TestRouterResolvesWildcardHosts(t *testing.T) {
	r, err := NewRouter([]Namespace{
		{Name: "docker.io", Default: true, LibraryPrefix: true, Mirror: true},
		{Name: "999.dkr.ecr.eu-west-1.amazonaws.com", Mirror: true},
		{Name: ecr, Wildcard: true, Mirror: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	repo, err := r.Resolve("123.dkr.ecr.us-east-1.amazonaws.com/team/app", "")
	if err != nil || repo.Namespace != "123.dkr.ecr.us-east-1.amazonaws.com" || repo.Name != "team/app" {
		t.Fatalf("Resolve = %+v, %v", repo, err)
	}
	if repo.Canonical() != "123.dkr.ecr.us-east-1.amazonaws.com/team/app" {
		t.Errorf("canonical %q", repo.Canonical())
	}
	if repo, err := r.Resolve("team/app", "456.dkr.ecr.us-west-2.amazonaws.com"); err != nil || repo.Namespace != "456.dkr.ecr.us-west-2.amazonaws.com" {
		t.Errorf("?ns= a wildcard host: %+v, %v", repo, err)
	}
	if !r.Mirror("123.dkr.ecr.us-east-1.amazonaws.com") {
		t.Error("a wildcard host is not a mirror")
	}
	if shape, ok := r.Shape("123.dkr.ecr.us-east-1.amazonaws.com"); !ok || shape != ecr {
		t.Errorf("Shape = %q, %v", shape, ok)
	}
	// A host configured by its own name is that namespace, not the wildcard's.
	if _, ok := r.Shape("999.dkr.ecr.eu-west-1.amazonaws.com"); ok {
		t.Error("an explicitly configured host was taken for a wildcard host")
	}
	for _, name := range []string{"evil.example/app", "123.dkr.ecr.us-east-1.amazonaws.com.evil.example/app"} {
		if _, err := r.Resolve(name, ""); err == nil {
			t.Errorf("Resolve(%q) reached a namespace", name)
		}
	}
	if _, err := NewRouter([]Namespace{{Name: ecr, Wildcard: true, Default: true}}); err == nil {
		t.Error("a default wildcard namespace was accepted")
	}
}

// FuzzWildcardRouter: whatever the name and ?ns=, a request routed
// through a wildcard names a host of its shape, valid and not an IP.
func FuzzWildcardRouter(f *testing.F) {
	for _, s := range []string{"123.dkr.ecr.us-east-1.amazonaws.com/app", "evil.com#.dkr.ecr.x.amazonaws.com/a",
		"1.2.3.4/a", "a.dkr.ecr.b.amazonaws.com:1/x", "user@a.dkr.ecr.b.amazonaws.com/x", "A.dkr.ecr.b.amazonaws.com/x"} {
		f.Add(s, "")
		f.Add("app", s)
	}
	p, err := ParsePattern(ecr)
	if err != nil {
		f.Fatal(err)
	}
	r, err := NewRouter([]Namespace{{Name: ecr, Wildcard: true, Mirror: true}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, name, ns string) {
		parsed, err := ParsePath("/v2/" + name + "/manifests/latest")
		if err != nil {
			return
		}
		repo, err := r.Resolve(parsed.Name, ns)
		if err != nil {
			return
		}
		if !p.Match(repo.Namespace) || !ValidHost(repo.Namespace) || repo.Namespace != strings.ToLower(repo.Namespace) {
			t.Fatalf("Resolve(%q, %q) routed to %q, not a host of %s", parsed.Name, ns, repo.Namespace, ecr)
		}
		labels := strings.Split(repo.Namespace, ".")
		if len(labels) != 6 || labels[1] != "dkr" || labels[2] != "ecr" || labels[4] != "amazonaws" || labels[5] != "com" {
			t.Fatalf("routed to %q", repo.Namespace)
		}
	})
}
