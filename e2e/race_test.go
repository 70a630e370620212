//go:build race

package e2e

// raceEnabled builds the cairn binary under test with -race too, so real
// client traffic can find data races in it.
const raceEnabled = true
