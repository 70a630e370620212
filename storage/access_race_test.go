package storage_test

import (
	"sync"
	"testing"

	"github.com/cairn-mirror/cairn/storage"
)

// FlushAccess reads len(batch) after unlocking accessMu; when pending was
// empty, batch is still s.pending, which Touch writes under the lock: a
// data race (-race fails any test that flushes while serving).
func TestFlushAccessRacesTouch(t *testing.T) {
	s, err := storage.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const d = "sha256:0000000000000000000000000000000000000000000000000000000000000001"
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 2000 {
			s.Touch(d)
		}
	})
	wg.Go(func() {
		for range 2000 {
			s.FlushAccess()
		}
	})
	wg.Wait()
}
