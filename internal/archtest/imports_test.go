package archtest

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/cairn-mirror/cairn"

// allowed maps a package (or a tree, ending in "/...") to the project
// packages it may depend on, directly or not. internal/... is always allowed.
var allowed = map[string][]string{
	"registry":       nil,
	"admin":          {"cache", "storage"},
	"cache":          {"storage", "upstream"},
	"replication":    {"storage", "upstream"},
	"storage":        nil,
	"upstream":       nil,
	"auth":           nil,
	"cluster":        nil,
	"internal/...":   nil,
	"configs":        nil,
	"benchmarks/...": nil,
}

func TestImportDirections(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	if !strings.Contains(string(out), module+"/registry") {
		t.Fatalf("go list did not see the project's packages:\n%s", out)
	}
	for pkg := range strings.FieldsSeq(string(out)) {
		rel, ok := strings.CutPrefix(pkg, module+"/")
		// cmd wires everything; e2e and benchmarks drive the whole binary.
		if !ok || strings.HasPrefix(rel, "cmd/") || strings.HasPrefix(rel, "e2e") || strings.HasPrefix(rel, "benchmarks") {
			continue
		}
		checkPackage(t, rel)
	}
}

func checkPackage(t *testing.T, rel string) {
	t.Helper()
	rules, ok := rulesFor(rel)
	if !ok {
		t.Errorf("package %s has no rule in ARCHITECTURE.md's import map; add one here and there", rel)
		return
	}
	out, err := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}}`, module+"/"+rel).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", rel, err)
	}
	for dep := range strings.FieldsSeq(string(out)) {
		d, ok := strings.CutPrefix(dep, module+"/")
		if !ok || d == rel || strings.HasPrefix(d, "internal/") {
			continue
		}
		if !contains(rules, d) {
			t.Errorf("%s depends on %s; ARCHITECTURE.md allows only %v and internal/...", rel, d, rules)
		}
	}
}

func rulesFor(rel string) ([]string, bool) {
	for k, v := range allowed {
		if k == rel || (strings.HasSuffix(k, "/...") && strings.HasPrefix(rel, strings.TrimSuffix(k, "..."))) {
			return v, true
		}
	}
	return nil, false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
