package benchmarks

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
)

// blobSize is the cold blob of the fan-out.
const blobSize = 16 << 20

// BenchmarkFanOut measures cold fills followed by N concurrent readers:
// every iteration is a fresh blob that N clients ask for at once. Bytes/s
// counts what the clients receive (N x blob); the upstream serves it once.
func BenchmarkFanOut(b *testing.B) {
	for _, readers := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("readers=%d", readers), func(b *testing.B) {
			s := newStack(b)
			b.SetBytes(int64(blobSize * readers))
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				dgst := s.origin.add(randomBlob(b, blobSize))
				b.StartTimer()
				fanOut(b, s.srv.URL+"/v2/library/bench/blobs/"+dgst, readers)
			}
			if gets := s.origin.gets; gets != b.N {
				b.Fatalf("upstream GETs %d for %d fills, want one each", gets, b.N)
			}
		})
	}
}

func fanOut(b *testing.B, url string, readers int) {
	var wg sync.WaitGroup
	for range readers {
		wg.Go(func() {
			resp, err := http.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			defer resp.Body.Close()
			if n, err := io.Copy(io.Discard, resp.Body); err != nil || n != blobSize {
				b.Errorf("read %d bytes, %v", n, err)
			}
		})
	}
	wg.Wait()
}
