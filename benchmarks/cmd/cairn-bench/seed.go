package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync/atomic"
)

// seedCounter makes every generated blob different, across servers and runs.
var seedCounter atomic.Uint64

// blobSource is size bytes of ChaCha8 output: random (nothing compresses
// it) and cheap to make twice, once to hash and once to push, so no blob
// is ever held in memory whole.
type blobSource struct {
	seed [32]byte
	size int64
}

func newBlobSource(size int64) blobSource {
	var s blobSource
	s.size = size
	n := seedCounter.Add(1)
	copy(s.seed[:], fmt.Sprintf("cairn-bench %d %d", n, rand.Uint64()))
	return s
}

func (s blobSource) reader() io.Reader {
	return io.LimitReader(rand.NewChaCha8(s.seed), s.size)
}

func (s blobSource) digest() (string, error) {
	h := sha256.New()
	if _, err := io.CopyBuffer(h, s.reader(), make([]byte, 256*kib)); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// pushBlob uploads size bytes read from r, of the given digest, to repo
// in one monolithic PUT.
func (e *env) pushBlob(ctx context.Context, repo, digest string, size int64, r io.Reader) error {
	base := "http://" + e.upAddr
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", nil)
	if err != nil {
		return err
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("upload %s: POST: %s", repo, resp.Status)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return fmt.Errorf("upload %s: Location: %w", repo, err)
	}
	loc = (&url.URL{Scheme: "http", Host: e.upAddr}).ResolveReference(loc)
	q := loc.Query()
	q.Set("digest", digest)
	loc.RawQuery = q.Encode()
	req, err = http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), r)
	if err != nil {
		return err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = e.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("upload %s %s: PUT: %s", repo, digest, resp.Status)
	}
	return nil
}

// seedBlob pushes a fresh random blob of size to repo and returns its
// digest.
func (e *env) seedBlob(ctx context.Context, repo string, size int64) (string, error) {
	src := newBlobSource(size)
	digest, err := src.digest()
	if err != nil {
		return "", err
	}
	return digest, e.pushBlob(ctx, repo, digest, size, src.reader())
}

// descriptor is an OCI content descriptor.
type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

const (
	ociManifest = "application/vnd.oci.image.manifest.v1+json"
	ociConfig   = "application/vnd.oci.image.config.v1+json"
	ociLayer    = "application/vnd.oci.image.layer.v1.tar"
	// manifestAccept is what a client sends for a manifest.
	manifestAccept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json"
)

// image is a single-layer image seeded upstream.
type image struct {
	repo, tag string
	manifest  string // its digest
	layer     string // the layer's digest
	size      int64  // the layer's size
}

// seedImage pushes a config, one random layer of size and a manifest
// tagged tag.
func (e *env) seedImage(ctx context.Context, repo, tag string, size int64) (image, error) {
	img := image{repo: repo, tag: tag, size: size}
	var err error
	if img.layer, err = e.seedBlob(ctx, repo, size); err != nil {
		return img, err
	}
	config := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%q]}}`, img.layer))
	cfgDigest := sha256Digest(config)
	if err := e.pushBlob(ctx, repo, cfgDigest, int64(len(config)), bytes.NewReader(config)); err != nil {
		return img, err
	}
	m, err := json.Marshal(struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		Config        descriptor   `json:"config"`
		Layers        []descriptor `json:"layers"`
	}{2, ociManifest, descriptor{ociConfig, cfgDigest, int64(len(config))}, []descriptor{{ociLayer, img.layer, size}}})
	if err != nil {
		return img, err
	}
	img.manifest = sha256Digest(m)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, fmt.Sprintf("http://%s/v2/%s/manifests/%s", e.upAddr, repo, tag), bytes.NewReader(m))
	if err != nil {
		return img, err
	}
	req.Header.Set("Content-Type", ociManifest)
	resp, err := e.client.Do(req)
	if err != nil {
		return img, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return img, fmt.Errorf("manifest %s:%s: PUT: %s", repo, tag, resp.Status)
	}
	return img, nil
}

func sha256Digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}
