package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// uploadCap is the uploads.max_size of the upload limit tests.
const uploadCap = 64 << 10

// limitsFixture is a node whose users alice, bob and carol may push to
// registry.internal, under the uploads section given.
type limitsFixture struct {
	node    *node
	dataDir string
	cfgs    []string
}

func newLimitsFixture(t *testing.T, uploads string) *limitsFixture {
	t.Helper()
	f := &limitsFixture{dataDir: t.TempDir()}
	f.cfgs = []string{fmt.Sprintf(`auth:
  htpasswd_file: %q
  access:
    - users: [alice, bob, carol]
      repositories: ["registry.internal/**"]
      actions: [pull, push]`, writeHtpasswd(t)), uploads}
	f.start(t)
	return f
}

func (f *limitsFixture) start(t *testing.T) {
	t.Helper()
	f.node = startNode(t, testConfig(t, f.dataDir, "127.0.0.1:9", "127.0.0.1:9", f.cfgs...))
}

// tmp lists the node's tmp/ (fills and upload sessions in progress).
func (f *limitsFixture) tmp(t *testing.T) []string {
	t.Helper()
	return dirEntries(t, filepath.Join(f.dataDir, "tmp"))
}

const uploadsPath = "/v2/registry.internal/team/app/blobs/uploads/"

// startSession opens an upload session as user and returns its Location.
func (f *limitsFixture) startSession(t *testing.T, user string) string {
	t.Helper()
	resp, body := send(t, "POST", f.node.url(uploadsPath), user, nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST as %s: status %d (%s), want 202", user, resp.StatusCode, body)
	}
	return resp.Header.Get("Location")
}

// sendStream is send with a body of unknown length (chunked encoding).
func sendStream(t *testing.T, method, url, user string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, io.MultiReader(bytes.NewReader(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, pushUsers[user])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	out, err := readAll(resp)
	if err != nil {
		t.Fatal(err)
	}
	return resp, out
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// An upload past uploads.max_size, however it arrives, is 413 SIZE_INVALID;
// its session is gone and nothing of it is left in tmp/. An upload of
// exactly the cap is taken.
func TestUploadPastMaxSizeRefused(t *testing.T) {
	f := newLimitsFixture(t, fmt.Sprintf("uploads: {max_size: %d}", uploadCap))
	over := randomBytes(t, uploadCap+1)
	half := over[:uploadCap/2+1]
	type step struct {
		method string
		stream bool // no Content-Length
		body   []byte
		digest bool // ?digest= of over
	}
	tests := []struct {
		name  string
		steps []step // on one session (the first opens it when it is a POST)
	}{
		{"monolithic POST", []step{{"POST", false, over, true}}},
		{"monolithic POST, streamed", []step{{"POST", true, over, true}}},
		{"PUT with the whole body", []step{{"PUT", false, over, true}}},
		{"chunks", []step{{"PATCH", false, half, false}, {"PATCH", false, half, false}}},
		{"chunks, streamed", []step{{"PATCH", true, half, false}, {"PATCH", true, half, false}}},
		{"chunk then final PUT", []step{{"PATCH", false, half, false}, {"PUT", true, half, true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loc := f.node.url(uploadsPath)
			if tt.steps[0].method != "POST" {
				loc = f.node.url(f.startSession(t, "alice"))
			}
			var resp *http.Response
			var body []byte
			for i, s := range tt.steps {
				url := loc
				if s.digest {
					url += sep(url) + "digest=" + digestOf(over)
				}
				if s.stream {
					resp, body = sendStream(t, s.method, url, "alice", s.body)
				} else {
					resp, body = send(t, s.method, url, "alice", s.body)
				}
				if i < len(tt.steps)-1 {
					if resp.StatusCode != http.StatusAccepted {
						t.Fatalf("step %d (%s): status %d (%s), want 202", i, s.method, resp.StatusCode, body)
					}
					loc = f.node.url(resp.Header.Get("Location"))
				}
			}
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d (%s), want 413", resp.StatusCode, body)
			}
			assertOCIError(t, "the upload past the cap", body, "SIZE_INVALID")
			if left := f.tmp(t); len(left) != 0 {
				t.Errorf("tmp/ holds %v, want nothing", left)
			}
			if tt.steps[0].method != "POST" {
				resp, body := send(t, "GET", loc, "alice", nil)
				if resp.StatusCode != http.StatusNotFound {
					t.Errorf("the session after the refusal: status %d, want 404", resp.StatusCode)
				}
				assertOCIError(t, "the session after the refusal", body, "BLOB_UPLOAD_UNKNOWN")
			}
		})
	}
	exact := over[:uploadCap]
	resp, body := send(t, "POST", f.node.url(uploadsPath+"?digest="+digestOf(exact)), "alice", exact)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("an upload of exactly the cap: status %d (%s), want 201", resp.StatusCode, body)
	}
}

// sep is the separator before a new query parameter of url.
func sep(url string) string {
	if strings.Contains(url, "?") {
		return "&"
	}
	return "?"
}

// A Content-Length past the cap is refused before a byte of the body is
// read: the client that asked "Expect: 100-continue" gets the 413 and
// never the 100 that would invite the body.
func TestUploadDeclaredPastMaxSizeRefusedUnread(t *testing.T) {
	f := newLimitsFixture(t, fmt.Sprintf("uploads: {max_size: %d}", uploadCap))
	for _, tt := range []struct{ method, path string }{
		{"POST", uploadsPath + "?digest=" + digestOf([]byte("never sent"))},
		{"PATCH", f.startSession(t, "alice")},
	} {
		method, path := tt.method, tt.path
		conn, err := net.DialTimeout("tcp", f.node.addr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		req, _ := http.NewRequest(method, "http://"+f.node.addr()+path, nil)
		req.SetBasicAuth("alice", pushUsers["alice"])
		fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n",
			method, path, f.node.addr(), req.Header.Get("Authorization"), int64(1)<<40)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s with a 1 TiB Content-Length: %v", method, err)
		}
		body, _ := io.ReadAll(resp.Body)
		conn.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("%s with a 1 TiB Content-Length: status %d, want 413 before the body", method, resp.StatusCode)
			continue
		}
		assertOCIError(t, method+" with a 1 TiB Content-Length", body, "SIZE_INVALID")
	}
	if left := f.tmp(t); len(left) != 0 {
		t.Errorf("tmp/ holds %v, want nothing", left)
	}
}

// Past uploads.max_sessions_per_user a user's new session is 429
// TOOMANYREQUESTS, past uploads.max_sessions anyone's; a refusal creates
// nothing, the counts survive a restart, and an ended session makes room.
func TestUploadSessionCapsSurviveRestart(t *testing.T) {
	f := newLimitsFixture(t, "uploads: {max_sessions: 3, max_sessions_per_user: 2}")
	refused := func(user, when string) {
		t.Helper()
		resp, body := send(t, "POST", f.node.url(uploadsPath), user, nil)
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("%s's session %s: status %d (%s), want 429", user, when, resp.StatusCode, body)
		}
		assertOCIError(t, user+"'s session "+when, body, "TOOMANYREQUESTS")
	}
	alice := f.startSession(t, "alice")
	f.startSession(t, "alice")
	refused("alice", "past her 2")
	f.startSession(t, "bob")
	refused("carol", "past the node's 3")
	if left := f.tmp(t); len(left) != 3 {
		t.Errorf("tmp/ holds %d files, want the 3 sessions'", len(left))
	}

	f.node.stop(t)
	f.start(t)
	refused("alice", "past her 2, after a restart")
	refused("carol", "past the node's 3, after a restart")
	if resp, body := send(t, "DELETE", f.node.url(alice), "alice", nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("cancelling alice's session: status %d (%s), want 204", resp.StatusCode, body)
	}
	f.startSession(t, "carol")
	refused("alice", "past the node's 3 again")
}
