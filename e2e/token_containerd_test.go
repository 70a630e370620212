package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-mirror/cairn/auth"
)

// TestPullWithContainerdTokenAuthTLS: containerd pulls a pushed image
// through cairn over HTTPS (trusting the --tls-self-signed CA with the
// printed hosts.toml) with the Docker token flow and alice's credentials:
// ctr's --user goes to the resolver, which follows cairn's Bearer
// challenge to cairn's own /token. Without --user the pull is refused,
// since anonymous clients may do nothing.
func TestPullWithContainerdTokenAuthTLS(t *testing.T) {
	requireTools(t, "skopeo", "containerd", "ctr")
	bin := cairnBinary(t)
	keyFile := filepath.Join(t.TempDir(), "token.key")
	if err := auth.GenerateKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	rest := strings.Replace(pushConfig(t, "[]"), "\nupstreams:", "\n  token:\n    key_file: "+keyFile+"\nupstreams:", 1)

	node, hosts := startTLSCairn(t, bin, rest)

	sk := newSkopeo(t)
	src, img := ociLayout(t)
	digest := mustDigest(t, img.Digest).String()
	skopeoPush(t, sk, node, src, "docker://"+node.addr+"/"+pushedRef)

	ctd := startContainerd(t)
	ctd.writeHostsFile(t, "registry.internal", hosts)

	pull := func(extra ...string) (string, error) {
		args := append([]string{"images", "pull", "--hosts-dir", ctd.hosts, "--snapshotter", ctd.snapshotter}, extra...)
		return ctd.ctr(t, append(args, pushedRef)...)
	}

	// Without credentials: refused, and nothing lands in containerd.
	if out, err := pull(); err == nil {
		t.Fatalf("CAIRN BUG: anonymous ctr pull with anonymous: [] succeeded:\n%s", out)
	} else if !strings.Contains(strings.ToLower(out), "401") && !strings.Contains(strings.ToLower(out), "unauthorized") {
		t.Errorf("anonymous pull refused, but ctr does not say 401 or unauthorized:\n%s", out)
	} else {
		t.Logf("anonymous pull refused: %s", lastLine(out))
	}
	if out, _ := ctd.ctr(t, "images", "ls", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("after the refused pull containerd lists images:\n%s", out)
	}

	// With alice's credentials: the token flow, complete and unpacked.
	mark := node.proc.log.Len()
	if out, err := pull("--user", "alice:"+pushUsers["alice"]); err != nil {
		t.Fatalf("ctr pull as alice: %v\n%s\ncairn log:\n%s", err, out, node.proc.log.Tail(30))
	}
	out, err := ctd.ctr(t, "images", "check", "--snapshotter", ctd.snapshotter, "name=="+pushedRef)
	if err != nil {
		t.Fatal(err)
	}
	ok := false
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && f[0] == pushedRef && f[2] == digest && f[3] == "complete" && f[len(f)-1] == "true" {
			ok = true
		}
	}
	if !ok {
		t.Errorf("after pulling %s, ctr images check does not show it at %s, complete and unpacked:\n%s", pushedRef, digest, out)
	}
	log := node.proc.log.String()[mark:]
	if !strings.Contains(log, `"user":"alice"`) || !strings.Contains(log, "token issued") {
		t.Errorf("no token was issued to alice for the pull: it did not go through the token flow\ncairn log:\n%s", node.proc.log.Tail(30))
	}
	if strings.Contains(node.proc.log.String(), pushUsers["alice"]) {
		t.Error("cairn's log holds alice's password")
	}
	if len(node.blobGETs(mark)) == 0 {
		t.Errorf("containerd's pull fetched no blob through cairn:\n%s", node.proc.log.Tail(20))
	}
	node.stop(t)
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
