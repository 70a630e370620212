package benchmarks

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	code := m.Run()
	removeFixture()
	os.Exit(code)
}
