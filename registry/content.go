package registry

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/cairn-mirror/cairn/internal/httprange"
	"github.com/cairn-mirror/cairn/internal/oci"
	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/internal/route"
)

func (h *Handler) manifest(w *responseWriter, r *http.Request, req *request) error {
	accept := oci.ParseAccept(r.Header.Values("Accept"))
	m, err := h.puller.Manifest(r.Context(), req.repo, req.path.Reference, accept)
	if err != nil {
		return err
	}
	if route.IsDigest(req.path.Reference) && m.Digest != req.path.Reference {
		return fmt.Errorf("manifest %s resolved to %s", req.path.Reference, m.Digest)
	}
	setContentHeaders(w.Header(), m.Descriptor)
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return nil
	}
	_, err = w.Write(m.Body)
	return err
}

// setContentHeaders describes d. Keys are written in canonical form
// directly: Header.Set would canonicalise them again on every request.
func setContentHeaders(h http.Header, d oci.Descriptor) {
	h["Content-Type"] = []string{d.MediaType}
	if d.Size >= 0 { // an upstream HEAD may not have said
		h["Content-Length"] = []string{strconv.FormatInt(d.Size, 10)}
	}
	h["Docker-Content-Digest"] = []string{d.Digest}
	h["Etag"] = []string{`"` + d.Digest + `"`}
}

func (h *Handler) blob(w *responseWriter, r *http.Request, req *request) error {
	dgst := req.path.Reference
	if r.Method == http.MethodHead {
		d, err := h.puller.StatBlob(r.Context(), req.repo, dgst)
		if err != nil {
			return err
		}
		setContentHeaders(w.Header(), d)
		w.Header().Set("Accept-Ranges", "bytes")
		w.WriteHeader(http.StatusOK)
		return nil
	}
	b, err := h.puller.OpenBlob(r.Context(), req.repo, dgst)
	if err != nil {
		return err
	}
	defer b.Close()
	return h.sendBlob(w, r, dgst, b)
}

// sendBlob answers with the whole blob or the requested range. Once the
// status line is out, an error can only cut the body short: the renderer
// sends nothing more, and net/http closes a connection whose body is shorter
// than its Content-Length.
func (h *Handler) sendBlob(w *responseWriter, r *http.Request, dgst string, b oci.Blob) error {
	size := b.Size()
	rng, ranged, err := httprange.Parse(r.Header.Get("Range"), size)
	if err != nil {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
		return err
	}
	setContentHeaders(w.Header(), oci.Descriptor{MediaType: oci.MediaTypeOctetStream, Digest: dgst, Size: size})
	w.Header().Set("Accept-Ranges", "bytes")
	status := http.StatusOK
	if !ranged {
		rng = httprange.Range{Start: 0, Length: size}
	} else {
		status = http.StatusPartialContent
		w.Header().Set("Content-Range", rng.ContentRange(size))
		w.Header().Set("Content-Length", strconv.FormatInt(rng.Length, 10))
	}
	w.WriteHeader(status)
	_, err = b.WriteRange(r.Context(), w, rng.Start, rng.Length)
	return err
}

type tagList struct {
	Name string   `json:"name"`
	Tags []string `json:"tags"`
}

func (h *Handler) tags(w *responseWriter, r *http.Request, req *request) error {
	q := r.URL.Query()
	n := 0
	if s := q.Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			return fmt.Errorf("n=%q is not a count: %w", s, ocierr.PaginationInvalid)
		}
		n = v
	}
	tags, more, err := h.puller.Tags(r.Context(), req.repo, n, q.Get("last"))
	if err != nil {
		return err
	}
	if tags == nil {
		tags = []string{}
	}
	if more && len(tags) > 0 {
		w.Header().Set("Link", nextLink(req.repo.Sent, n, tags[len(tags)-1], q.Get("ns")))
	}
	body, err := json.Marshal(tagList{Name: req.repo.Sent, Tags: tags})
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, err = w.Write(body)
	}
	return err
}

// nextLink is the RFC 5988 link to the next page, in the name the client sent.
func nextLink(name string, n int, last, ns string) string {
	q := url.Values{}
	if n > 0 {
		q.Set("n", strconv.Itoa(n))
	}
	q.Set("last", last)
	if ns != "" {
		q.Set("ns", ns)
	}
	return fmt.Sprintf(`</v2/%s/tags/list?%s>; rel="next"`, name, q.Encode())
}
