package storage

import (
	"fmt"
	"io"
	"syscall"
)

// Badger keeps its write-ahead logs in memory-mapped files that grow into
// space the file system allocates as pages are first written: on a full
// disk that write is a SIGBUS, not an error. So blob writes (fills and
// uploads) never take the last reserve bytes of the file system holding
// the data directory: a write that would is refused with ENOSPC, which
// the cache answers as it does a full disk (evict and retry, then serve
// uncached), and badger keeps room to write. cairn cannot stop other
// programs filling the disk: give the data directory a file system of its
// own.

// maxReserve caps the reserve: badger's two memtables each write ahead
// into a 16 MiB mapped file, twice over, with room to spare.
const maxReserve = 64 << 20

// reserveFor is the reserve on a file system of the given size: a
// quarter of it, at most maxReserve (so 64 MiB on any disk of 256 MiB or
// more).
func reserveFor(size int64) int64 { return min(maxReserve, size/4) }

// fsSpace returns the size of the file system holding dir and the bytes
// an unprivileged writer may still use there.
func fsSpace(dir string) (size, avail int64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return int64(st.Blocks) * st.Bsize, int64(st.Bavail) * st.Bsize, nil
}

// roomFor fails with an error wrapping ENOSPC unless n more bytes leave
// the reserve free.
func (s *Store) roomFor(n int) error {
	if s.reserve <= 0 {
		return nil
	}
	_, avail, err := fsSpace(s.dir)
	if err != nil {
		return nil // cannot tell: the write itself will say
	}
	if avail-int64(n) < s.reserve {
		return fmt.Errorf("%d bytes free, %d kept for metadata: %w", avail, s.reserve, syscall.ENOSPC)
	}
	return nil
}

// reserved is a writer that checks roomFor before each write.
type reserved struct {
	s *Store
	w io.Writer
}

func (r reserved) Write(p []byte) (int, error) {
	if err := r.s.roomFor(len(p)); err != nil {
		return 0, err
	}
	return r.w.Write(p)
}
