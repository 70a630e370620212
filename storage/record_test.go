package storage

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func TestRecordRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 22, 1, 2, 3, 456789, time.UTC)
	for _, rec := range []blobRecord{
		{},
		{Size: 1 << 40, Kind: KindManifest, MediaType: "application/vnd.oci.image.index.v1+json", Created: at, LastAccess: at.Add(time.Hour), Shared: true},
		{Size: 7, Kind: KindLayer, Created: at},
	} {
		var got blobRecord
		if err := got.decode(rec.encode()); err != nil || got != rec {
			t.Errorf("round trip of %+v: got %+v, %v", rec, got, err)
		}
	}
}

// A schema 1 data dir: its JSON records are read, and rewritten in the
// binary form by the next write.
func TestRecordReadsSchema1JSON(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	b := commitBlob(t, s, []byte("from schema 1"), KindLayer)
	old := blobRecord{Size: b.Size, Kind: KindLayer, Created: b.Created, LastAccess: b.LastAccess}
	js, _ := json.Marshal(old)
	if err := s.db.Update(func(txn *badger.Txn) error {
		return errors.Join(txn.Set(blobKey(b.Digest), js), txn.Set([]byte(schemaKey), []byte("1")))
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	info, err := s.Stat(b.Digest)
	if err != nil || info.Size != b.Size || info.Kind != KindLayer || !info.Created.Equal(b.Created) {
		t.Fatalf("Stat of a JSON record = %+v, %v; want %+v", info, err, b)
	}
	if err := s.MarkShared(b.Digest); err != nil {
		t.Fatal(err)
	}
	var raw []byte
	if err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(blobKey(b.Digest))
		if err == nil {
			raw, err = item.ValueCopy(nil)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(raw) == 0 || raw[0] != recordV1 || bytes.HasPrefix(raw, []byte("{")) {
		t.Errorf("record after a write = %q, want the binary form", raw)
	}
	var v uint64
	if err := s.db.View(func(txn *badger.Txn) (err error) { v, err = getUint(txn, schemaKey); return err }); err != nil || v != schemaVersion {
		t.Errorf("schema after Open = %d, %v; want %d", v, err, schemaVersion)
	}
}

func FuzzRecordDecode(f *testing.F) {
	f.Add(blobRecord{Size: 3, Kind: KindConfig, MediaType: "x"}.encode())
	f.Add([]byte(`{"size":1}`))
	f.Add([]byte{recordV1, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		var rec blobRecord
		if err := rec.decode(b); err != nil || len(b) == 0 || b[0] != recordV1 {
			return
		}
		var again blobRecord
		if err := again.decode(rec.encode()); err != nil || again != rec {
			t.Fatalf("re-encoding %+v: %+v, %v", rec, again, err)
		}
	})
}
