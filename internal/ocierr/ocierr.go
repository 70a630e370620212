// Package ocierr holds the error codes of the OCI Distribution specification
// (plus the few that distribution added and clients understand) as sentinel
// error kinds. Any package may wrap them with %w; the registry's renderer
// finds the code with errors.As and answers with the matching status and an
// OCI error body.
//
// It imports nothing from the project.
package ocierr

import (
	"errors"
	"net/http"
)

// Code is an OCI error code. It is an error itself, so it can be wrapped:
//
//	fmt.Errorf("blob %s: %w", dgst, ocierr.BlobUnknown)
type Code string

// The codes of the OCI Distribution specification.
const (
	BlobUnknown         Code = "BLOB_UNKNOWN"
	BlobUploadInvalid   Code = "BLOB_UPLOAD_INVALID"
	BlobUploadUnknown   Code = "BLOB_UPLOAD_UNKNOWN"
	DigestInvalid       Code = "DIGEST_INVALID"
	ManifestBlobUnknown Code = "MANIFEST_BLOB_UNKNOWN"
	ManifestInvalid     Code = "MANIFEST_INVALID"
	ManifestUnknown     Code = "MANIFEST_UNKNOWN"
	NameInvalid         Code = "NAME_INVALID"
	NameUnknown         Code = "NAME_UNKNOWN"
	SizeInvalid         Code = "SIZE_INVALID"
	Unauthorized        Code = "UNAUTHORIZED"
	Denied              Code = "DENIED"
	Unsupported         Code = "UNSUPPORTED"
	TooManyRequests     Code = "TOOMANYREQUESTS"
)

// Codes that are not in the specification but that distribution defined and
// clients handle. cairn uses Unavailable for upstream outages.
const (
	Unavailable  Code = "UNAVAILABLE"
	RangeInvalid Code = "RANGE_INVALID"
	// PaginationInvalid answers a tags/list n that is not a count.
	PaginationInvalid Code = "PAGINATION_NUMBER_INVALID"
)

func (c Code) Error() string { return string(c) }

// Status is the HTTP status that goes with the code.
func (c Code) Status() int {
	switch c {
	case BlobUnknown, BlobUploadUnknown, ManifestUnknown, NameUnknown:
		return http.StatusNotFound
	case Unauthorized:
		return http.StatusUnauthorized
	case Denied:
		return http.StatusForbidden
	case Unsupported:
		return http.StatusMethodNotAllowed
	case TooManyRequests:
		return http.StatusTooManyRequests
	case Unavailable:
		return http.StatusServiceUnavailable
	case RangeInvalid:
		return http.StatusRequestedRangeNotSatisfiable
	default:
		return http.StatusBadRequest
	}
}

// CodeOf returns the code err carries, and false if it carries none (an
// internal error, answered with 500).
func CodeOf(err error) (Code, bool) {
	var c Code
	if errors.As(err, &c) {
		return c, true
	}
	return "", false
}

// statusError answers with a status other than its code's default (a
// manifest over the size limit is MANIFEST_INVALID with 413).
type statusError struct {
	err    error
	status int
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// WithStatus makes err answer with status; its code stays what err wraps.
func WithStatus(err error, status int) error { return &statusError{err: err, status: status} }

// StatusOf is the HTTP status for err: an explicit WithStatus, else its
// code's status, else 500.
func StatusOf(err error) int {
	var se *statusError
	if errors.As(err, &se) {
		return se.status
	}
	if c, ok := CodeOf(err); ok {
		return c.Status()
	}
	return http.StatusInternalServerError
}

// ErrBusy marks an error cairn answered itself, without asking the origin,
// because a local limit on requests to it (max_connections,
// max_requests_per_second, a pause after a 429) was reached. It goes with
// Unavailable or TooManyRequests; circuit breakers do not count it.
var ErrBusy = errors.New("origin busy: a local request limit was reached")
