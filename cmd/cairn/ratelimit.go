package main

import (
	"fmt"
	"time"

	"github.com/cairn-mirror/cairn/internal/ocierr"
)

// tooManyLogins refuses a credential check: TOOMANYREQUESTS, with when to
// come back (Retry-After, whole seconds, at least one).
type tooManyLogins struct{ retry time.Duration }

func (e tooManyLogins) Error() string {
	return fmt.Sprintf("too many failed logins from this address: retry in %s", e.RetryAfter())
}

func (e tooManyLogins) Unwrap() error { return ocierr.TooManyRequests }

// RetryAfter rounds up to whole seconds, at least one.
func (e tooManyLogins) RetryAfter() time.Duration {
	return max(time.Second, (e.retry + time.Second - 1).Truncate(time.Second))
}
