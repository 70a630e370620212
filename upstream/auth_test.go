package upstream

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/cairn-mirror/cairn/internal/ocierr"
)

const testToken = "tok-123"

// requireBasic lets through only requests with user:pass (the token
// endpoint excepted).
func requireBasic(user, pass string) fault {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if kind(r.URL.Path) == "token" {
			return false
		}
		if u, p, ok := r.BasicAuth(); ok && u == user && p == pass {
			return false
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		w.WriteHeader(http.StatusUnauthorized)
		return true
	}
}

// tokenLog records what the token endpoint was asked.
type tokenLog struct {
	mu     sync.Mutex
	scopes []string
}

// requireBearer serves /token (which requires user:pass) on the registry's
// own host:port and lets through only requests carrying its token.
func requireBearer(u *testUpstream, user, pass string, log *tokenLog) fault {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if kind(r.URL.Path) == "token" {
			if u2, p, ok := r.BasicAuth(); !ok || u2 != user || p != pass {
				w.WriteHeader(http.StatusUnauthorized)
				return true
			}
			log.mu.Lock()
			log.scopes = append(log.scopes, r.URL.Query().Get("scope"))
			log.mu.Unlock()
			io.WriteString(w, `{"token":"`+testToken+`"}`)
			return true
		}
		if r.Header.Get("Authorization") == "Bearer "+testToken {
			return false
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+u.srv.URL+`/token",service="test"`)
		w.WriteHeader(http.StatusUnauthorized)
		return true
	}
}

// fakeKeychain records the resources it is asked about.
type fakeKeychain struct {
	mu    sync.Mutex
	asked []string
	auth  authn.Authenticator
}

func (k *fakeKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.asked = append(k.asked, r.RegistryStr())
	return k.auth, nil
}

var userPass = authn.FromConfig(authn.AuthConfig{Username: "alice", Password: "s3cret"})

func TestAuth(t *testing.T) {
	tests := []struct {
		name    string
		bearer  bool
		opts    []Option
		wantErr error
	}{
		{"basic", false, []Option{WithBasic("alice", "s3cret")}, nil},
		{"basic wrong password", false, []Option{WithBasic("alice", "nope")}, ocierr.Unauthorized},
		{"basic anonymous", false, nil, ocierr.Unauthorized},
		{"bearer", true, []Option{WithBasic("alice", "s3cret")}, nil},
		{"bearer keychain", true, []Option{WithKeychain(&fakeKeychain{auth: userPass})}, nil},
		{"bearer wrong password", true, []Option{WithBasic("alice", "nope")}, ocierr.Unauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newTestUpstream(t)
			raw, _ := rawOf(t, u.pushImage(t, "library/app:v1"))
			log := &tokenLog{}
			if tt.bearer {
				u.use(requireBearer(u, "alice", "s3cret", log))
			} else {
				u.use(requireBasic("alice", "s3cret"))
			}
			m, err := u.client(t, tt.opts...).Manifest(t.Context(), "library/app", "v1")
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got error %v, want %v", err, tt.wantErr)
			}
			if err == nil && !bytes.Equal(m.Body, raw) {
				t.Errorf("got body %q, want %q", m.Body, raw)
			}
			if tt.bearer && tt.wantErr == nil && (len(log.scopes) != 1 || log.scopes[0] != "repository:library/app:pull") {
				t.Errorf("got token scopes %q, want one repository:library/app:pull", log.scopes)
			}
		})
	}
}

func TestKeychainResolvedByNamespace(t *testing.T) {
	u := newTestUpstream(t)
	u.pushImage(t, "library/app:v1")
	u.use(requireBearer(u, "alice", "s3cret", &tokenLog{}))
	tests := []struct{ namespace, want string }{
		{"docker.io", "index.docker.io"}, // what the docker keychain knows Docker Hub as
		{"ghcr.io", "ghcr.io"},
		{"registry.example:5000", "registry.example:5000"},
	}
	for _, tt := range tests {
		kc := &fakeKeychain{auth: userPass}
		c, err := New(tt.namespace, u.srv.URL, WithKeychain(kc))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Manifest(t.Context(), "library/app", "v1"); err != nil {
			t.Fatalf("%s: %v", tt.namespace, err)
		}
		if len(kc.asked) != 1 || kc.asked[0] != tt.want {
			t.Errorf("%s: keychain asked for %q, want [%s] (never the URL host %s)", tt.namespace, kc.asked, tt.want, u.host())
		}
	}
}

// storage is a blob store a registry redirects to; it records the
// Authorization headers it receives.
type storage struct {
	srv  *httptest.Server
	mu   sync.Mutex
	auth []string
}

func newStorage(t *testing.T, blob []byte) *storage {
	s := &storage{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.auth = append(s.auth, r.Header.Get("Authorization"))
		s.mu.Unlock()
		http.ServeContent(w, r, "blob", time.Time{}, bytes.NewReader(blob))
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func TestBlobRedirectDropsAuthorization(t *testing.T) {
	for _, bearer := range []bool{false, true} {
		for _, offset := range []int64{0, 100} {
			u := newTestUpstream(t)
			blob, dgst := firstLayer(t, u.pushImage(t, "library/app:v1"))
			st := newStorage(t, blob)
			gate := requireBasic("alice", "s3cret")
			if bearer {
				gate = requireBearer(u, "alice", "s3cret", &tokenLog{})
			}
			redirect := func(w http.ResponseWriter, r *http.Request) bool {
				if kind(r.URL.Path) != "blob" {
					return false
				}
				http.Redirect(w, r, st.srv.URL+"/storage/"+strings.TrimPrefix(dgst, "sha256:"), http.StatusTemporaryRedirect)
				return true
			}
			u.use(gate, redirect)
			b, err := u.client(t, WithBasic("alice", "s3cret")).OpenBlob(t.Context(), "library/app", dgst, offset)
			if err != nil {
				t.Fatalf("bearer=%v offset=%d: %v", bearer, offset, err)
			}
			got, err := io.ReadAll(b.Body)
			b.Body.Close()
			if err != nil || !bytes.Equal(got, blob[offset:]) || b.Offset != offset {
				t.Errorf("bearer=%v offset=%d: got %d bytes from %d (err %v), want %d from %d", bearer, offset, len(got), b.Offset, err, len(blob)-int(offset), offset)
			}
			if len(st.auth) != 1 || st.auth[0] != "" {
				t.Errorf("bearer=%v: storage got Authorization %q, want one request with none", bearer, st.auth)
			}
		}
	}
}
