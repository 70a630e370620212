package storage

import (
	"fmt"
	"io"
	"slices"

	"github.com/dgraph-io/badger/v4"

	"github.com/cairn-mirror/cairn/internal/oci"
)

// maxManifestSize is the largest body ReadManifest loads into memory; it
// matches the cap callers apply when receiving manifests.
const maxManifestSize = 4 << 20

// PutManifest stores a manifest byte for byte as a KindManifest blob, after
// verifying body against digest (ErrInvalidDigest, ErrDigestMismatch). In
// the same transaction as the blob metadata it records the manifest graph
// (ref/<digest>\x00<child> for every child: an index's manifests, an image's
// config and layers, and the subject) and a ChangeManifestPut entry of the
// change log naming w's repository, cause and site (ErrInvalidName for a
// bad name; an unknown cause, or a replica write without its site, is
// refused). A body that is not JSON is still stored, without refs.
// Children need not be stored yet.
func (s *Store) PutManifest(digest, mediaType string, body []byte, w ManifestWrite) (BlobInfo, error) {
	if err := w.check(); err != nil {
		return BlobInfo{}, err
	}
	wr, err := s.NewWriter(digest, int64(len(body)))
	if err != nil {
		return BlobInfo{}, err
	}
	defer wr.Abort()
	if _, err := wr.Write(body); err != nil {
		return BlobInfo{}, err
	}
	children := manifestChildren(body)
	return wr.commit(KindManifest, mediaType, func(txn *badger.Txn, log *txnLog) error {
		for _, c := range children {
			if err := txn.Set(refKey(digest, c), []byte("{}")); err != nil {
				return err
			}
		}
		_, err := log.add(Change{Kind: ChangeManifestPut, Cause: w.Cause, Site: w.Site,
			Namespace: w.Namespace, Repo: w.Repo, Digest: digest})
		return err
	})
}

// manifestChildren returns the valid, distinct digests a manifest body
// names, sorted; none if the body is not a JSON object.
func manifestChildren(body []byte) []string {
	m, err := oci.Parse(body)
	if err != nil {
		return nil
	}
	var out []string
	for _, d := range m.Names() {
		if _, err := parseDigest(d); err == nil {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// ReadManifest returns the whole body of a committed blob, normally a
// manifest; ErrNotFound if absent. Blobs over 4 MiB are refused rather than
// loaded into memory.
func (s *Store) ReadManifest(digest string) ([]byte, BlobInfo, error) {
	f, info, err := s.OpenBlob(digest)
	if err != nil {
		return nil, BlobInfo{}, err
	}
	defer f.Close()
	if info.Size > maxManifestSize {
		return nil, BlobInfo{}, fmt.Errorf("storage: read manifest %s: %d bytes, over the %d limit",
			digest, info.Size, maxManifestSize)
	}
	body, err := io.ReadAll(io.LimitReader(f, maxManifestSize+1))
	if err != nil {
		return nil, BlobInfo{}, fmt.Errorf("storage: read manifest %s: %w", digest, err)
	}
	return body, info, nil
}

// Refs returns the digests a stored manifest names (see PutManifest),
// sorted; empty if none or if parent is not a stored manifest.
func (s *Store) Refs(parent string) ([]string, error) {
	if _, err := parseDigest(parent); err != nil {
		return nil, err
	}
	refs, err := s.keysUnder(refsPrefix(parent))
	if err != nil {
		return nil, fmt.Errorf("storage: refs %s: %w", parent, err)
	}
	return refs, nil
}
