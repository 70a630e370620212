package upstream

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

var acceptAll = []string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.docker.distribution.manifest.v2+json",
}

type pushed interface {
	RawManifest() ([]byte, error)
	Digest() (v1.Hash, error)
}

func rawOf(t *testing.T, p pushed) ([]byte, string) {
	t.Helper()
	raw, err := p.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	d, err := p.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return raw, d.String()
}

func TestManifest(t *testing.T) {
	u := newTestUpstream(t)
	img := u.pushImage(t, "library/app:v1")
	idx := u.pushIndex(t, "library/multi:v1")
	imgRaw, imgDigest := rawOf(t, img)
	idxRaw, idxDigest := rawOf(t, idx)
	imgType, _ := img.MediaType()
	idxType, _ := idx.MediaType()
	c := u.client(t)

	tests := []struct {
		name, repo, ref string
		wantBody        []byte
		wantDigest      string
		wantType        string
	}{
		{"image by tag", "library/app", "v1", imgRaw, imgDigest, string(imgType)},
		{"image by digest", "library/app", imgDigest, imgRaw, imgDigest, string(imgType)},
		{"index by tag", "library/multi", "v1", idxRaw, idxDigest, string(idxType)},
		{"index by digest", "library/multi", idxDigest, idxRaw, idxDigest, string(idxType)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := c.Manifest(t.Context(), tt.repo, tt.ref)
			if err != nil {
				t.Fatalf("Manifest: %v", err)
			}
			if !bytes.Equal(m.Body, tt.wantBody) {
				t.Errorf("got body %q, want %q", m.Body, tt.wantBody)
			}
			if m.Digest != tt.wantDigest {
				t.Errorf("got digest %s, want %s", m.Digest, tt.wantDigest)
			}
			if m.MediaType != tt.wantType {
				t.Errorf("got media type %q, want %q", m.MediaType, tt.wantType)
			}
			if m.Size != int64(len(tt.wantBody)) {
				t.Errorf("got size %d, want %d", m.Size, len(tt.wantBody))
			}
		})
	}
}

func TestManifestSendsTheOneCompleteAccept(t *testing.T) {
	u := newTestUpstream(t)
	u.pushImage(t, "library/app:v1")
	var mu sync.Mutex
	var got []string
	u.use(func(w http.ResponseWriter, r *http.Request) bool {
		if kind(r.URL.Path) == "manifest" {
			mu.Lock()
			got = r.Header.Values("Accept")
			mu.Unlock()
		}
		return false
	})
	c := u.client(t)
	if _, err := c.Manifest(t.Context(), "library/app", "v1"); err != nil {
		t.Fatal(err)
	}
	want := []string{strings.Join(append(slices.Clone(acceptAll), "application/vnd.oci.artifact.manifest.v1+json"), ", ")}
	if !slices.Equal(got, want) {
		t.Errorf("GET: got Accept %q, want %q", got, want)
	}
	got = nil
	if _, err := c.HeadManifest(t.Context(), "library/app", "v1"); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("HEAD: got Accept %q, want %q", got, want)
	}

}

func TestHeadManifest(t *testing.T) {
	u := newTestUpstream(t)
	img := u.pushImage(t, "library/app:v1")
	raw, dgst := rawOf(t, img)
	mt, _ := img.MediaType()
	c := u.client(t)
	for _, ref := range []string{"v1", dgst} {
		d, err := c.HeadManifest(t.Context(), "library/app", ref)
		if err != nil {
			t.Fatalf("HeadManifest(%s): %v", ref, err)
		}
		want := Descriptor{MediaType: string(mt), Digest: dgst, Size: int64(len(raw))}
		if d != want {
			t.Errorf("HeadManifest(%s): got %+v, want %+v", ref, d, want)
		}
	}
}

func firstLayer(t *testing.T, img v1.Image) ([]byte, string) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := layers[0].Digest()
	return b, d.String()
}

func TestHeadBlob(t *testing.T) {
	u := newTestUpstream(t)
	blob, dgst := firstLayer(t, u.pushImage(t, "library/app:v1"))
	d, err := u.client(t).HeadBlob(t.Context(), "library/app", dgst)
	if err != nil {
		t.Fatal(err)
	}
	if d.Digest != dgst || d.Size != int64(len(blob)) {
		t.Errorf("got %+v, want digest %s size %d", d, dgst, len(blob))
	}
}

func TestOpenBlob(t *testing.T) {
	u := newTestUpstream(t)
	blob, dgst := firstLayer(t, u.pushImage(t, "library/app:v1"))
	size := int64(len(blob))
	// ggcr's registry only parses "bytes=start-end"; cairn sends the
	// open-ended "bytes=start-" (RFC 9110, what distribution and S3 serve).
	closeRange := func(w http.ResponseWriter, r *http.Request) bool {
		if v := r.Header.Get("Range"); strings.HasSuffix(v, "-") {
			r.Header.Set("Range", fmt.Sprintf("%s%d", v, size-1))
		}
		return false
	}
	ignoreRange := func(w http.ResponseWriter, r *http.Request) bool {
		r.Header.Del("Range")
		return false
	}
	tests := []struct {
		name       string
		faults     []fault
		offset     int64
		wantOffset int64
	}{
		{"full", []fault{closeRange}, 0, 0},
		{"from offset", []fault{closeRange}, 100, 100},
		{"range ignored", []fault{ignoreRange}, 100, 0},
		// Unmodified, ggcr's registry answers "bytes=100-" with 416: the
		// client reads from the start instead, and says so.
		{"open-ended range refused", nil, 100, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u.use(tt.faults...)
			b, err := u.client(t).OpenBlob(t.Context(), "library/app", dgst, tt.offset)
			if err != nil {
				t.Fatalf("OpenBlob: %v", err)
			}
			defer b.Body.Close()
			got, err := io.ReadAll(b.Body)
			if err != nil {
				t.Fatal(err)
			}
			if b.Offset != tt.wantOffset || b.Size != size {
				t.Errorf("got offset %d size %d, want %d %d", b.Offset, b.Size, tt.wantOffset, size)
			}
			if !bytes.Equal(got, blob[tt.wantOffset:]) {
				t.Errorf("got %d bytes, want blob[%d:] (%d bytes)", len(got), tt.wantOffset, size-tt.wantOffset)
			}
		})
	}
}

func TestOpenBlobBadContentRange(t *testing.T) {
	u := newTestUpstream(t)
	_, dgst := firstLayer(t, u.pushImage(t, "library/app:v1"))
	u.use(status(isKind("blob"), http.StatusPartialContent, map[string]string{"Content-Range": "bytes 0-9/100"}, "0123456789"))
	_, err := u.client(t).OpenBlob(t.Context(), "library/app", dgst, 50)
	if err == nil {
		t.Fatal("got nil error for a 206 starting at 0, want an error")
	}
}

func TestHTTPS(t *testing.T) {
	u := newTLSTestUpstream(t)
	raw, _ := rawOf(t, u.pushImage(t, "library/app:v1"))
	u.use()
	c := u.client(t, WithTransport(u.srv.Client().Transport))
	m, err := c.Manifest(t.Context(), "library/app", "v1")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Body, raw) {
		t.Errorf("got body %q, want %q", m.Body, raw)
	}
	if got := u.count("ping"); got != 1 {
		t.Errorf("got %d pings, want 1", got)
	}
}

func TestTransportsBuiltLazily(t *testing.T) {
	u := newTestUpstream(t)
	u.pushImage(t, "library/app:v1")
	u.pushImage(t, "library/other:v1")
	u.use()
	c := u.client(t)
	if got := u.count("ping") + u.count("manifest"); got != 0 {
		t.Fatalf("New made %d requests, want 0", got)
	}
	steps := []struct {
		repo      string
		wantPings int
	}{{"library/app", 1}, {"library/app", 1}, {"library/other", 2}, {"library/app", 2}}
	for i, s := range steps {
		if _, err := c.Manifest(t.Context(), s.repo, "v1"); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got := u.count("ping"); got != s.wantPings {
			t.Errorf("step %d (%s): got %d pings, want %d", i, s.repo, got, s.wantPings)
		}
	}
}

func TestConcurrentFirstRequestsPingOnce(t *testing.T) {
	u := newTestUpstream(t)
	u.pushImage(t, "library/app:v1")
	started, ready := make(chan struct{}, 1), make(chan struct{})
	u.use(func(w http.ResponseWriter, r *http.Request) bool {
		if kind(r.URL.Path) == "ping" {
			select {
			case started <- struct{}{}:
			default:
			}
			<-ready // hold the ping so later callers join the build in flight
		}
		return false
	})
	c := u.client(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			_, err := c.Manifest(t.Context(), "library/app", "v1")
			errs <- err
		})
	}
	<-started
	close(ready)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := u.count("ping"); got != 1 {
		t.Errorf("got %d pings, want 1", got)
	}
}

func TestTags(t *testing.T) {
	u := newTestUpstream(t)
	for _, tag := range []string{"a", "b", "c"} {
		u.pushImage(t, "library/app:"+tag)
	}
	u.use(func(w http.ResponseWriter, r *http.Request) bool {
		if kind(r.URL.Path) == "tags" && r.URL.Query().Get("n") != "" {
			w.Header().Set("Link", `</v2/library/app/tags/list?n=2&last=b>; rel="next"`)
		}
		return false
	})
	c := u.client(t)
	tests := []struct {
		n        int
		last     string
		want     []string
		wantMore bool
	}{
		{0, "", []string{"a", "b", "c"}, false},
		{2, "", []string{"a", "b"}, true},
		{0, "a", []string{"b", "c"}, false},
	}
	for _, tt := range tests {
		tags, more, err := c.Tags(t.Context(), "library/app", tt.n, tt.last)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(tags, tt.want) || more != tt.wantMore {
			t.Errorf("Tags(%d, %q): got %q more=%v, want %q more=%v", tt.n, tt.last, tags, more, tt.want, tt.wantMore)
		}
	}
}
