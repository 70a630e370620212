package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
)

// VerifyReport is what Verify found.
type VerifyReport struct {
	Checked     int      // files re-hashed
	Bytes       int64    // bytes re-hashed
	Quarantined []string // digests whose file did not match, now removed
}

// Verify re-hashes the file of every stored blob. A file whose content does
// not match its digest is moved to <data_dir>/quarantine/<alg>-<hex> and its
// metadata dropped as Remove does (after a second hash under the digest
// lock, so a concurrent re-commit of good bytes is not lost), logged as a
// ChangeEvict entry with CauseAdmin. A file that cannot be read is logged
// and skipped. Verify checks ctx between files and returns ctx's error
// with the report so far. It may run while blobs are read, committed and
// evicted; blobs removed meanwhile are skipped.
func (s *Store) Verify(ctx context.Context) (VerifyReport, error) {
	var rep VerifyReport
	err := s.forEachBlob(func(info BlobInfo) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return s.verifyBlob(info.Digest, &rep)
	})
	if err != nil {
		return rep, fmt.Errorf("storage: verify: %w", err)
	}
	return rep, nil
}

// verifyBlob re-hashes one blob and quarantines it on a mismatch.
func (s *Store) verifyBlob(d string, rep *VerifyReport) error {
	p, err := parseDigest(d)
	if err != nil {
		return nil // such a record has no file; Open drops it
	}
	size, ok, err := s.hashFile(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		s.log.Warn("verify: cannot read blob file", "digest", d, "err", err)
		return nil
	}
	rep.Checked++
	rep.Bytes += size
	if ok {
		return nil
	}
	quarantined, err := s.quarantineCorrupt(p)
	if quarantined {
		s.verifyFailures.Add(1)
		rep.Quarantined = append(rep.Quarantined, d)
	}
	return err
}

// quarantineCorrupt removes the blob of p, moving its file to quarantine/,
// if it still does not match under the digest lock.
func (s *Store) quarantineCorrupt(p parsedDigest) (bool, error) {
	unlock := s.lockDigest(p.String())
	defer unlock()
	if _, ok, err := s.hashFile(p); err != nil || ok {
		return false, nil // fixed, or gone, meanwhile
	}
	_, err := s.removeLocked(p.String(), nil, quarantineFile, CauseAdmin)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("quarantine %s: %w", p, err)
	}
	return true, nil
}

// VerifyFailures counts the blob files quarantined since Open because
// their content did not match their digest (by Verify, or by the walk
// after an unclean stop).
func (s *Store) VerifyFailures() int64 { return s.verifyFailures.Load() }
