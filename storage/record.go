package storage

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Blob records are binary since schema 2: they are decoded on every
// lookup that misses the in-memory cache and a million times by each
// eviction scan, where JSON and its time parsing cost more than the
// badger read. Records written as JSON by schema 1 are still read (their
// first byte is '{'); any write rewrites them in the binary form.
//
// Layout: recordV1, uvarint size, 8-byte big-endian created and
// last-access Unix nanoseconds (0 for the zero time), a flags byte
// (bit 0: shared), then kind and media type, each uvarint length-prefixed.
const recordV1 = 0x01

func (r blobRecord) encode() []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+16+1+2+len(r.Kind)+len(r.MediaType))
	b = append(b, recordV1)
	b = binary.AppendUvarint(b, uint64(r.Size))
	b = binary.BigEndian.AppendUint64(b, unixNano(r.Created))
	b = binary.BigEndian.AppendUint64(b, unixNano(r.LastAccess))
	var flags byte
	if r.Shared {
		flags |= 1
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(len(r.Kind)))
	b = append(b, r.Kind...)
	b = binary.AppendUvarint(b, uint64(len(r.MediaType)))
	return append(b, r.MediaType...)
}

var errBadRecord = errors.New("malformed blob record")

// decode reads a record in either form; b is not retained.
func (r *blobRecord) decode(b []byte) error {
	if len(b) > 0 && b[0] == '{' {
		return json.Unmarshal(b, r)
	}
	if len(b) < 1 || b[0] != recordV1 {
		return errBadRecord
	}
	b = b[1:]
	size, n := binary.Uvarint(b)
	if n <= 0 || len(b) < n+17 {
		return errBadRecord
	}
	b = b[n:]
	*r = blobRecord{
		Size:       int64(size),
		Created:    fromUnixNano(binary.BigEndian.Uint64(b)),
		LastAccess: fromUnixNano(binary.BigEndian.Uint64(b[8:])),
		Shared:     b[16]&1 != 0,
	}
	b = b[17:]
	kind, b, ok := lengthPrefixed(b)
	if !ok {
		return errBadRecord
	}
	media, b, ok := lengthPrefixed(b)
	if !ok || len(b) != 0 {
		return errBadRecord
	}
	r.Kind, r.MediaType = Kind(kind), string(media)
	return nil
}

func lengthPrefixed(b []byte) ([]byte, []byte, bool) {
	l, n := binary.Uvarint(b)
	if n <= 0 || uint64(len(b)-n) < l {
		return nil, nil, false
	}
	return b[n : n+int(l)], b[n+int(l):], true
}

func unixNano(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.UnixNano())
}

func fromUnixNano(v uint64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(v)).UTC()
}

// getRecord reads the blob/ record of d (ErrNotFound).
func getRecord(txn *badger.Txn, d string, rec *blobRecord) error {
	item, err := txn.Get(blobKey(d))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	return item.Value(func(b []byte) error { return decodeItem(d, b, rec) })
}

// setRecord writes the blob/ record of d.
func setRecord(txn *badger.Txn, d string, rec blobRecord) error {
	return txn.Set(blobKey(d), rec.encode())
}

func decodeItem(d string, b []byte, rec *blobRecord) error {
	if err := rec.decode(b); err != nil {
		return fmt.Errorf("blob record %q: %w", d, err)
	}
	return nil
}
