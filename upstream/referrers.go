package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/cairn-mirror/cairn/internal/oci"
	"github.com/cairn-mirror/cairn/internal/ocierr"
)

// OpReferrers is the op label of referrers API requests.
const OpReferrers = "referrers"

// maxReferrersBody caps a referrers answer (the manifest cap: it is an index).
const maxReferrersBody = 4 << 20

// ociIndexType is the media type a referrers answer must have.
const ociIndexType = oci.MediaTypeOCIIndex

// ErrNoReferrersAPI means the upstream does not serve the referrers API:
// it answered 404 (distribution 2.8, go-containerregistry's pkg/registry),
// or 200 with something that is not an OCI index. Errors wrapping it also
// wrap ocierr.ManifestUnknown (or the 404's NAME_UNKNOWN); callers fall back
// to the referrers tag schema (the tag <alg>-<hex>).
var ErrNoReferrersAPI = oci.ErrNoReferrersAPI

// Referrers GETs /v2/<repo>/referrers/<digest>, with ?artifactType= when
// artifactType is not empty. body is the upstream's OCI index, byte for
// byte (capped at 4 MiB); filtered reports that the upstream applied the
// artifactType filter (its OCI-Filters-Applied header names it): if not,
// the caller filters. Errors wrap ErrNoReferrersAPI as above, or are
// classified like any other request (ocierr codes).
func (c *Client) Referrers(ctx context.Context, repo, digest, artifactType string) (body []byte, filtered bool, err error) {
	if err := validateRepo(repo); err != nil {
		return nil, false, err
	}
	if err := validateDigest(digest); err != nil {
		return nil, false, err
	}
	repo = c.upstreamRepo(repo)
	q := url.Values{}
	if artifactType != "" {
		q.Set("artifactType", artifactType)
	}
	req := c.newRequest(http.MethodGet, "/v2/"+repo+"/referrers/"+digest, q)
	req.Header.Set("Accept", ociIndexType)
	resp, err := c.do(ctx, OpReferrers, repo, req)
	if err != nil {
		return nil, false, c.noReferrersAPI(err)
	}
	defer resp.Body.Close()
	if mt := mediaType(resp.Header.Get("Content-Type")); mt != ociIndexType {
		return nil, false, fmt.Errorf("upstream %s: %s: answered %q, not an OCI index: %w: %w",
			c.namespace, OpReferrers, mt, ErrNoReferrersAPI, ocierr.ManifestUnknown)
	}
	body, err = c.readReferrers(resp)
	if err != nil {
		return nil, false, err
	}
	return body, artifactType != "" && filtersApplied(resp.Header, "artifactType"), nil
}

// noReferrersAPI marks a 404 as ErrNoReferrersAPI. classify maps a 404
// without a known body code to Unavailable for this op (the endpoint is
// not one it knows), which would read as an outage: it is not one.
func (c *Client) noReferrersAPI(err error) error {
	var se *StatusError
	if !errors.As(err, &se) || se.Status != http.StatusNotFound || se.Op != OpReferrers {
		return err
	}
	code := se.Code
	if code != ocierr.NameUnknown && code != ocierr.ManifestUnknown {
		code = ocierr.ManifestUnknown
	}
	e := *se
	e.Code = code
	return fmt.Errorf("%w: %w", ErrNoReferrersAPI, &e)
}

func (c *Client) readReferrers(resp *http.Response) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxReferrersBody+1))
	if err == nil && len(body) > maxReferrersBody {
		err = fmt.Errorf("referrers index over %d bytes", maxReferrersBody)
	}
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %s: %w: %w", c.namespace, OpReferrers, ocierr.Unavailable, err)
	}
	return body, nil
}

// filtersApplied reports whether an OCI-Filters-Applied header lists name.
func filtersApplied(h http.Header, name string) bool {
	for _, v := range h.Values("OCI-Filters-Applied") {
		for f := range strings.SplitSeq(v, ",") {
			if strings.TrimSpace(f) == name {
				return true
			}
		}
	}
	return false
}
