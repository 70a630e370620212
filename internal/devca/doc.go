// Package devca makes the development TLS of `cairn serve
// --tls-self-signed`: a CA and a server certificate it signed, kept in one
// directory and reused while they are valid. It is for trying cairn out
// and for tests, never for production certificates.
//
// It imports only the standard library; no cairn package imports it but
// cmd/cairn (and tests).
package devca
