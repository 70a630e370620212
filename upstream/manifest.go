package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/cairn-mirror/cairn/internal/oci"
	"github.com/cairn-mirror/cairn/internal/ocierr"
)

// MaxManifestSize caps a manifest body (the size distribution enforces).
const MaxManifestSize = oci.MaxManifestBytes

// Descriptor describes upstream content; the type the cache passes on.
type Descriptor = oci.Descriptor

// Manifest is a manifest as the upstream sent it, byte for byte.
type Manifest = oci.Manifest

// Manifest GETs repo's manifest ref (a tag or a digest), sending
// oci.OriginAccept comma-joined in one Accept header (as containerd and
// ggcr do; registries split on commas): never the client's list, so every
// client's request gets the same bytes. The body is capped at MaxManifestSize (over: an error
// wrapping ocierr.ManifestInvalid with status 413). Digest is the body's
// sha256 (or ref itself when ref is a digest, which the body must hash
// to); a sha256 Docker-Content-Digest that disagrees with the body is
// ErrDigestMismatch too. MediaType is the Content-Type, or the body's
// mediaType field when the Content-Type is missing or generic.
func (c *Client) Manifest(ctx context.Context, repo, ref string) (*Manifest, error) {
	want, err := checkManifestArgs(repo, ref)
	if err != nil {
		return nil, err
	}
	repo = c.upstreamRepo(repo)
	req := c.newRequest(http.MethodGet, "/v2/"+repo+"/manifests/"+ref, nil)
	setAccept(req)
	resp, err := c.do(ctx, OpManifestGet, repo, req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := c.readManifest(resp)
	if err != nil {
		return nil, err
	}
	dgst, err := c.verifyManifest(OpManifestGet, want, resp.Header.Get("Docker-Content-Digest"), body)
	if err != nil {
		return nil, err
	}
	mt := manifestMediaType(resp.Header.Get("Content-Type"), body)
	return &Manifest{Descriptor: Descriptor{MediaType: mt, Digest: dgst, Size: int64(len(body))}, Body: body}, nil
}

// HeadManifest HEADs repo's manifest ref, with the Accept list of
// Manifest. The descriptor comes from
// Docker-Content-Digest, Content-Type and Content-Length (Size -1 if
// absent). Without Docker-Content-Digest, Digest is ref when ref is a
// digest and "" when it is a tag: the caller must GET to learn it.
func (c *Client) HeadManifest(ctx context.Context, repo, ref string) (Descriptor, error) {
	want, err := checkManifestArgs(repo, ref)
	if err != nil {
		return Descriptor{}, err
	}
	repo = c.upstreamRepo(repo)
	req := c.newRequest(http.MethodHead, "/v2/"+repo+"/manifests/"+ref, nil)
	setAccept(req)
	resp, err := c.do(ctx, OpManifestHead, repo, req)
	if err != nil {
		return Descriptor{}, err
	}
	resp.Body.Close()
	return c.headDescriptor(OpManifestHead, want, resp)
}

func checkManifestArgs(repo, ref string) (string, error) {
	if err := validateRepo(repo); err != nil {
		return "", err
	}
	return parseRef(ref)
}

// originAccept is oci.OriginAccept joined once.
var originAccept = strings.Join(oci.OriginAccept(), ", ")

func setAccept(req *http.Request) {
	req.Header["Accept"] = []string{originAccept}
}

func (c *Client) readManifest(resp *http.Response) ([]byte, error) {
	if resp.ContentLength > MaxManifestSize {
		return nil, c.tooLarge(resp.ContentLength)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %s: reading body: %w: %w", c.namespace, OpManifestGet, ocierr.Unavailable, err)
	}
	if len(body) > MaxManifestSize {
		return nil, c.tooLarge(int64(len(body)))
	}
	return body, nil
}

func (c *Client) tooLarge(n int64) error {
	err := fmt.Errorf("upstream %s: manifest of %d bytes over the %d byte limit: %w", c.namespace, n, MaxManifestSize, ocierr.ManifestInvalid)
	return ocierr.WithStatus(err, http.StatusRequestEntityTooLarge)
}

// verifyManifest returns the body's digest: want (a digest ref, verified)
// or its sha256. announced is the upstream's Docker-Content-Digest.
func (c *Client) verifyManifest(op, want, announced string, body []byte) (string, error) {
	sum := oci.DigestOf(body, "sha256")
	if strings.HasPrefix(announced, "sha256:") && announced != sum {
		return "", c.mismatch(op, announced, sum)
	}
	if want == "" {
		return sum, nil
	}
	if got := oci.DigestOf(body, algorithm(want)); got != want {
		return "", c.mismatch(op, want, got)
	}
	return want, nil
}

func (c *Client) mismatch(op, want, got string) error {
	return fmt.Errorf("upstream %s: %s: %w: %w: want %s, got %s", c.namespace, op, ErrDigestMismatch, ocierr.Unavailable, want, got)
}

// headDescriptor reads a HEAD answer; want is the digest asked for, if any.
func (c *Client) headDescriptor(op, want string, resp *http.Response) (Descriptor, error) {
	d := Descriptor{MediaType: mediaType(resp.Header.Get("Content-Type")), Size: resp.ContentLength, Digest: want}
	announced := resp.Header.Get("Docker-Content-Digest")
	if announced == "" {
		return d, nil
	}
	if err := validateDigest(announced); err != nil {
		return Descriptor{}, fmt.Errorf("upstream %s: %s: bad Docker-Content-Digest: %w: %w", c.namespace, op, ocierr.Unavailable, err)
	}
	if want != "" && sameAlgorithm(want, announced) && want != announced {
		return Descriptor{}, c.mismatch(op, want, announced)
	}
	if want == "" {
		d.Digest = announced
	}
	return d, nil
}

// genericTypes say nothing about which manifest a body is.
var genericTypes = map[string]bool{
	"": true, "application/json": true, "application/octet-stream": true,
	"text/plain": true, "binary/octet-stream": true,
}

func manifestMediaType(contentType string, body []byte) string {
	mt := mediaType(contentType)
	if !genericTypes[mt] {
		return mt
	}
	var m struct {
		MediaType string `json:"mediaType"`
	}
	if json.Unmarshal(body, &m) == nil && m.MediaType != "" {
		return m.MediaType
	}
	return mt
}

// mediaType drops parameters ("; charset=utf-8") from a Content-Type.
func mediaType(contentType string) string {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.ToLower(strings.TrimSpace(mt))
}
