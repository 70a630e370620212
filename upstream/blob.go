package upstream

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/cairn-mirror/cairn/internal/oci"
	"github.com/cairn-mirror/cairn/internal/ocierr"
)

// Blob is an open upstream blob body. The caller closes Body and verifies
// the digest while reading: OpenBlob does not.
type Blob = oci.RemoteBlob

// OpenBlob GETs repo's blob digest from offset (offset > 0 sends
// "Range: bytes=offset-"). A 206 must carry "Content-Range: bytes
// offset-end/total"; a 200 means the upstream sent the whole blob (Offset
// 0, the caller restarts its hash).
//
// Redirects (to storage URLs) are followed by http.Client's default policy.
// No Authorization header reaches another host: ggcr's transports add it
// only for the registry's host:port, per request, and http.Client copies to
// the redirect only the headers cairn set (Accept, Range, User-Agent).
func (c *Client) OpenBlob(ctx context.Context, repo, digest string, offset int64) (*Blob, error) {
	if err := checkBlobArgs(repo, digest); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("upstream: negative blob offset %d: %w", offset, ocierr.RangeInvalid)
	}
	up := c.upstreamRepo(repo)
	req := c.newRequest(http.MethodGet, "/v2/"+up+"/blobs/"+digest, nil)
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	resp, err := c.do(ctx, OpBlobGet, up, req)
	if offset > 0 && errors.Is(err, ocierr.RangeInvalid) {
		// Some registries refuse an open-ended Range: the whole body then,
		// whose head the caller skips (Offset 0).
		return c.OpenBlob(ctx, repo, digest, 0)
	}
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return &Blob{Body: resp.Body, Offset: 0, Size: resp.ContentLength}, nil
	case http.StatusPartialContent:
		return c.partialBlob(resp, offset)
	}
	resp.Body.Close()
	return nil, fmt.Errorf("upstream %s: %s: unexpected status %d: %w", c.namespace, OpBlobGet, resp.StatusCode, ocierr.Unavailable)
}

func (c *Client) partialBlob(resp *http.Response, offset int64) (*Blob, error) {
	start, total, err := parseContentRange(resp.Header.Get("Content-Range"))
	if err == nil && start != offset {
		err = fmt.Errorf("range starts at %d, asked for %d", start, offset)
	}
	if err != nil {
		resp.Body.Close()
		return nil, fmt.Errorf("upstream %s: %s: bad partial answer: %w: %w", c.namespace, OpBlobGet, ocierr.Unavailable, err)
	}
	return &Blob{Body: resp.Body, Offset: start, Size: total}, nil
}

// parseContentRange parses "bytes start-end/total" (total may be "*",
// returned as -1).
func parseContentRange(v string) (start, total int64, err error) {
	spec, ok := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	rng, size, ok2 := strings.Cut(spec, "/")
	first, last, ok3 := strings.Cut(rng, "-")
	if !ok || !ok2 || !ok3 {
		return 0, 0, fmt.Errorf("malformed Content-Range %q", v)
	}
	start, err1 := strconv.ParseInt(first, 10, 64)
	end, err2 := strconv.ParseInt(last, 10, 64)
	total = -1
	var err3 error
	if size != "*" {
		total, err3 = strconv.ParseInt(size, 10, 64)
	}
	if err1 != nil || err2 != nil || err3 != nil || start < 0 || end < start || (total >= 0 && end >= total) {
		return 0, 0, fmt.Errorf("malformed Content-Range %q", v)
	}
	return start, total, nil
}

// HeadBlob HEADs repo's blob digest. Size is Content-Length (-1 if absent);
// a Docker-Content-Digest that names another digest is ErrDigestMismatch.
func (c *Client) HeadBlob(ctx context.Context, repo, digest string) (Descriptor, error) {
	if err := checkBlobArgs(repo, digest); err != nil {
		return Descriptor{}, err
	}
	repo = c.upstreamRepo(repo)
	req := c.newRequest(http.MethodHead, "/v2/"+repo+"/blobs/"+digest, nil)
	resp, err := c.do(ctx, OpBlobHead, repo, req)
	if err != nil {
		return Descriptor{}, err
	}
	resp.Body.Close()
	return c.headDescriptor(OpBlobHead, digest, resp)
}

func checkBlobArgs(repo, digest string) error {
	if err := validateRepo(repo); err != nil {
		return err
	}
	return validateDigest(digest)
}
