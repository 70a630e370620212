package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-mirror/cairn/auth"
)

// TestPushWithSkopeoTokenAuth is TestPushWithSkopeoAnonymousPull with
// auth.token on: skopeo follows the Bearer challenge to cairn's own
// /token, pushes with the token it gets for alice's password, and an
// anonymous skopeo reads the image back through an anonymous token.
func TestPushWithSkopeoTokenAuth(t *testing.T) {
	requireTools(t, "skopeo")
	keyFile := filepath.Join(t.TempDir(), "token.key")
	if err := auth.GenerateKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(pushConfig(t, "[pull]"), "\nupstreams:", "\n  token:\n    key_file: "+keyFile+"\nupstreams:", 1)
	node := startCairnWith(t, cairnBinary(t), t.TempDir(), cfg)
	sk := newSkopeo(t)
	src, img := ociLayout(t)
	skopeoPush(t, sk, node, src, "docker://"+node.addr+"/"+pushedRef)
	checkPushedImage(t, sk, node, img, mustDigest(t, img.Digest).String())
	if !strings.Contains(node.proc.log.String(), `"user":"alice"`) || !strings.Contains(node.proc.log.String(), "token issued") {
		t.Errorf("no token was issued to alice: the push did not go through the token flow\ncairn log:\n%s", node.proc.log.Tail(30))
	}
	node.stop(t)
}
