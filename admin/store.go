package admin

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-mirror/cairn/storage"
)

// statusError is an error with the HTTP status the API answers it with.
type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string { return e.msg }

// RemoveBlob removes one blob from store, pinned or not. A blob that is
// not stored, or a digest that is not one, is an error saying so (404 and
// 400 through the API).
func RemoveBlob(store *storage.Store, digest string) error {
	err := store.Remove(digest)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return &statusError{http.StatusNotFound, fmt.Sprintf("blob %s is not cached", digest)}
	case errors.Is(err, storage.ErrInvalidDigest):
		return &statusError{http.StatusBadRequest, fmt.Sprintf("%q is not a digest", digest)}
	case err != nil:
		return fmt.Errorf("remove %s: %w", digest, err)
	}
	return nil
}

// ListTags returns every tag record of store, ordered by namespace,
// repository and tag, with the stored size of its closure; never nil.
func ListTags(store *storage.Store) ([]TagRow, error) {
	rows := []TagRow{}
	// The records are collected first: EachTag's callback must stay short.
	err := store.EachTag(func(ns, repo, tag string, rec storage.TagRecord) error {
		rows = append(rows, TagRow{Namespace: ns, Repo: repo, Tag: tag, Digest: rec.Digest,
			MediaType: rec.MediaType, CheckedAt: rec.CheckedAt})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing tags: %w", err)
	}
	for i := range rows {
		if rows[i].Bytes, err = closureBytes(store, rows[i].Digest); err != nil {
			return nil, err
		}
	}
	return rows, nil
}

// closureBytes sums the sizes of the stored digests of d's closure.
func closureBytes(store *storage.Store, d string) (int64, error) {
	closure, err := store.Closure(d)
	if err != nil {
		return 0, fmt.Errorf("closure of %s: %w", d, err)
	}
	var n int64
	for _, c := range closure {
		info, err := store.Stat(c)
		switch {
		case errors.Is(err, storage.ErrNotFound):
		case err != nil:
			return 0, fmt.Errorf("closure of %s: %w", d, err)
		default:
			n += info.Size
		}
	}
	return n, nil
}

// Prune removes from store the unpinned blobs not read for age, sparing
// those busy reports (nil offline, where nothing else reads the store).
// On error the result still lists what was removed.
func Prune(store *storage.Store, age time.Duration, busy func(digest string) bool) (PruneResult, error) {
	evicted, err := store.Prune(time.Now().Add(-age), busy)
	if err != nil {
		return newPruneResult(evicted), fmt.Errorf("prune: %w", err)
	}
	return newPruneResult(evicted), nil
}

// ParseAge parses a Go duration ("720h") or a whole number of days
// ("30d"); it must not be negative.
func ParseAge(s string) (time.Duration, error) {
	var d time.Duration
	var err error
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		n, err = strconv.Atoi(days)
		d = time.Duration(n) * 24 * time.Hour
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d < 0 {
		return 0, fmt.Errorf("older_than %q: want a duration such as 720h or a number of days such as 30d", s)
	}
	return d, nil
}
