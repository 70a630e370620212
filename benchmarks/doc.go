// Package benchmarks measures cairn's speed and memory. The Go benchmarks
// here wire the real stack (storage on disk, upstream client, cache,
// registry handler) against an in-process upstream on loopback; load
// harnesses side by side with a reference proxy come with their own issue.
//
// Like cmd, it may import every package.
package benchmarks
