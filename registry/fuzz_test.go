package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/cairn-mirror/cairn/internal/oci"
	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/internal/route"
)

// Fuzz targets for what a client sends on the push path: a chunk's
// Content-Range, a PATCH through the handler, a pushed manifest.

// FuzzParseChunkRange: no panic; an accepted range is 0 <= start <= end and
// its canonical form (with or without a bytes prefix) parses to the same.
func FuzzParseChunkRange(f *testing.F) {
	for _, s := range []string{"0-9", "10-10", "bytes=5-6", "bytes 0-0", "9-0", "-5", "5", "a-b", "", "0-",
		"0-9223372036854775807", "9223372036854775807-9223372036854775807", "+1-2", "1-2/3", "bytes=bytes=1-2", " 1-2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, end, ok := parseChunkRange(s)
		if !ok {
			if start != 0 || end != 0 {
				t.Errorf("parseChunkRange(%q) refused with %d, %d; want 0, 0", s, start, end)
			}
			return
		}
		if start < 0 || end < start {
			t.Fatalf("parseChunkRange(%q) = %d, %d: not 0 <= start <= end", s, start, end)
		}
		for _, form := range []string{"%d-%d", "bytes=%d-%d", "bytes %d-%d"} {
			canon := fmt.Sprintf(form, start, end)
			if s2, e2, ok2 := parseChunkRange(canon); !ok2 || s2 != start || e2 != end {
				t.Errorf("parseChunkRange(%q) = %d, %d, %v; want %d, %d (from %q)", canon, s2, e2, ok2, start, end, s)
			}
		}
	})
}

// fuzzPuller holds nothing: the push path never reads.
type fuzzPuller struct{}

func (fuzzPuller) Manifest(context.Context, route.Repo, string, []string) (oci.Manifest, error) {
	return oci.Manifest{}, ocierr.ManifestUnknown
}
func (fuzzPuller) StatBlob(context.Context, route.Repo, string) (oci.Descriptor, error) {
	return oci.Descriptor{}, ocierr.BlobUnknown
}
func (fuzzPuller) OpenBlob(context.Context, route.Repo, string) (oci.Blob, error) {
	return nil, ocierr.BlobUnknown
}
func (fuzzPuller) Tags(context.Context, route.Repo, int, string) ([]string, bool, error) {
	return nil, false, ocierr.NameUnknown
}

// allowAll lets everyone do everything, as user "fuzz".
type allowAll struct{}

func (allowAll) Authorize(*http.Request, string, Action) (string, error) { return "fuzz", nil }

// memUploader keeps upload sessions in memory and follows the Uploader
// contract on offsets: it is the reference the handler is checked against.
type memUploader struct {
	mu       sync.Mutex
	sessions map[string][]byte
	appends  int
}

func (u *memUploader) StartUpload(context.Context, route.Repo, string) (string, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	id := strconv.Itoa(len(u.sessions))
	u.sessions[id] = nil
	return id, nil
}

func (u *memUploader) AppendUpload(_ context.Context, _ route.Repo, id string, offset, _ int64, body io.Reader) (int64, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	b, ok := u.sessions[id]
	if !ok {
		return 0, ocierr.BlobUploadUnknown
	}
	if offset != int64(len(b)) {
		return int64(len(b)), fmt.Errorf("offset %d, session holds %d: %w", offset, len(b), ocierr.RangeInvalid)
	}
	more, err := io.ReadAll(body)
	if err != nil {
		return int64(len(b)), err
	}
	u.appends++
	u.sessions[id] = append(b, more...)
	return int64(len(u.sessions[id])), nil
}

func (u *memUploader) UploadStatus(_ context.Context, _ route.Repo, id string) (int64, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	b, ok := u.sessions[id]
	if !ok {
		return 0, ocierr.BlobUploadUnknown
	}
	return int64(len(b)), nil
}

func (u *memUploader) CommitUpload(context.Context, route.Repo, string, string) (oci.Descriptor, error) {
	return oci.Descriptor{}, ocierr.Unsupported
}

func (u *memUploader) CancelUpload(_ context.Context, _ route.Repo, id string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.sessions, id)
	return nil
}

func fuzzHandler(f *testing.F, u Uploader) *Handler {
	f.Helper()
	router, err := route.NewRouter([]route.Namespace{{Name: "registry.internal", Default: true}})
	if err != nil {
		f.Fatal(err)
	}
	h, err := New(router, fuzzPuller{}, WithAuthorizer(allowAll{}), WithPusher(u))
	if err != nil {
		f.Fatal(err)
	}
	return h
}

// FuzzPatchUpload sends a PATCH with any Content-Range, a known or
// streamed (chunked) length and any body to a session holding held bytes.
// The handler must answer 202 with the session grown by the body (the
// chunk started at the session's size, and its range matched a known
// length) or 416 with the session untouched; the Range header says what
// the session holds either way.
func FuzzPatchUpload(f *testing.F) {
	f.Add("0-9", []byte("0123456789"), uint16(0), true)
	f.Add("10-19", []byte("0123456789"), uint16(10), true)
	f.Add("5-14", []byte("0123456789"), uint16(10), true)
	f.Add("", []byte("streamed"), uint16(3), false)
	f.Add("0-0", []byte("more than one byte"), uint16(0), false)
	f.Add("bytes=0-3", []byte("abcd"), uint16(0), true)
	f.Add("0-9223372036854775807", []byte("x"), uint16(0), true)
	f.Add("garbage", []byte{}, uint16(1), true)
	u := &memUploader{sessions: map[string][]byte{}}
	h := fuzzHandler(f, u)
	f.Fuzz(func(t *testing.T, contentRange string, body []byte, held uint16, knownLength bool) {
		u.mu.Lock()
		u.sessions = map[string][]byte{"s": bytes.Repeat([]byte{'h'}, int(held))}
		u.mu.Unlock()
		req := httptest.NewRequest(http.MethodPatch, "/v2/team/app/blobs/uploads/s", bytes.NewReader(body))
		req.ContentLength = -1
		if knownLength {
			req.ContentLength = int64(len(body))
		}
		if contentRange != "" {
			req.Header.Set("Content-Range", contentRange)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		size, _ := u.UploadStatus(t.Context(), route.Repo{}, "s")

		start, end, parsed := parseChunkRange(contentRange)
		fits := contentRange == "" || (parsed && start == int64(held) && (!knownLength || end-start+1 == int64(len(body))))
		switch {
		case rec.Code == http.StatusAccepted && fits:
			if size != int64(held)+int64(len(body)) {
				t.Errorf("202, session of %d bytes; want %d + %d", size, held, len(body))
			}
		case rec.Code == http.StatusRequestedRangeNotSatisfiable && !fits:
			if size != int64(held) {
				t.Errorf("416, but the session went from %d to %d bytes", held, size)
			}
		default:
			t.Fatalf("PATCH Content-Range %q, %d bytes (known length %v) to a session of %d: status %d, fits %v (body %s)",
				contentRange, len(body), knownLength, held, rec.Code, fits, rec.Body)
		}
		if got, want := rec.Header().Get("Range"), uploadRange(size); got != want {
			t.Errorf("Range %q, want %q", got, want)
		}
		if rec.Header().Get("Location") != "/v2/team/app/blobs/uploads/s" {
			t.Errorf("Location %q", rec.Header().Get("Location"))
		}
	})
}

// FuzzParsePushedManifest: no panic; a refusal is MANIFEST_INVALID or
// DIGEST_INVALID; an accepted manifest is the body as sent, with a media
// type that agrees with the body's, the body's digest (the one pushed to,
// when pushed by digest) and a subject that is a valid digest.
func FuzzParsePushedManifest(f *testing.F) {
	img := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}`
	idx := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"subject":{"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}}`
	f.Add("application/vnd.oci.image.manifest.v1+json", []byte(img), "v1")
	f.Add("", []byte(img), digestWith([]byte(img), "sha256"))
	f.Add("application/octet-stream", []byte(idx), digestWith([]byte(idx), "sha512"))
	f.Add("", []byte(`{"layers":"not a list"}`), "v1")
	f.Add("application/vnd.oci.image.index.v1+json; charset=utf-8", []byte(img), "v1")
	f.Add("application/vnd.docker.distribution.manifest.v2+json", []byte(`{"schemaVersion":2}`), "sha256:00")
	f.Add("", []byte(`null`), "latest")
	f.Add("text/plain", []byte(`{"mediaType":1}`), "v1")
	f.Fuzz(func(t *testing.T, contentType string, body []byte, ref string) {
		m, subject, err := parsePushedManifest(contentType, body, ref)
		if err != nil {
			if !errors.Is(err, ocierr.ManifestInvalid) && !errors.Is(err, ocierr.DigestInvalid) {
				t.Fatalf("refused with %v: neither MANIFEST_INVALID nor DIGEST_INVALID", err)
			}
			return
		}
		if !bytes.Equal(m.Body, body) || m.Size != int64(len(body)) {
			t.Errorf("manifest of %d bytes (size %d), want the %d sent", len(m.Body), m.Size, len(body))
		}
		if m.MediaType == "" {
			t.Error("accepted without a media type")
		}
		var pm struct {
			MediaType string `json:"mediaType"`
		}
		if err := json.Unmarshal(body, &pm); err != nil {
			t.Fatalf("accepted a body that is not JSON: %v", err)
		}
		if pm.MediaType != "" && pm.MediaType != m.MediaType {
			t.Errorf("media type %q, but the body says %q", m.MediaType, pm.MediaType)
		}
		alg := "sha256"
		if route.IsDigest(ref) {
			alg, _, _ = strings.Cut(ref, ":")
			if m.Digest != ref {
				t.Errorf("pushed as %s, accepted as %s", ref, m.Digest)
			}
		}
		if want := digestWith(body, alg); m.Digest != want {
			t.Errorf("digest %s, want %s", m.Digest, want)
		}
		if err := route.ValidDigest(m.Digest); err != nil {
			t.Errorf("accepted with digest %q: %v", m.Digest, err)
		}
		if subject != "" && route.ValidDigest(subject) != nil {
			t.Errorf("subject %q is not a valid digest", subject)
		}
	})
}

// digestWith is body's digest with alg (sha512, else sha256), computed
// here rather than with the code under test.
func digestWith(body []byte, alg string) string {
	if alg == "sha512" {
		sum := sha512.Sum512(body)
		return "sha512:" + hex.EncodeToString(sum[:])
	}
	sum := sha256.Sum256(body)
	return "sha256:" + hex.EncodeToString(sum[:])
}
