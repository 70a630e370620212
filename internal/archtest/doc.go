// Package archtest holds only a test: it keeps the import directions of
// ARCHITECTURE.md true by asking `go list -deps` what each package pulls in.
package archtest
