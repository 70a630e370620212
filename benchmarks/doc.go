// Package benchmarks measures cairn's speed and memory. The Go benchmarks
// here wire the real stack (storage on disk, upstream client, cache,
// registry handler) against an in-process upstream on loopback.
//
// cmd/cairn-bench is the side-by-side harness: cairn and distribution's
// proxy mode (Debian's docker-registry with a proxy section) in front of one
// docker-registry upstream, every scenario run against both in alternation,
// the figures written to results/ as Markdown and JSON (make bench).
//
// Like cmd, it may import every package.
package benchmarks
