package upstream

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"

	"github.com/cairn-mirror/cairn/internal/ocierr"
)

// The OCI Distribution grammar for repository names, tags and digests.
var (
	repoRe   = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagRe    = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
	sha256Re = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)
	sha512Re = regexp.MustCompile(`^sha512:[a-f0-9]{128}$`)
)

func validateRepo(repo string) error {
	if len(repo) > 255 || !repoRe.MatchString(repo) {
		return fmt.Errorf("upstream: repository %q: %w", repo, ocierr.NameInvalid)
	}
	return nil
}

// validateDigest accepts sha256 and sha512 digests, the ones cairn stores.
func validateDigest(d string) error {
	if !sha256Re.MatchString(d) && !sha512Re.MatchString(d) {
		return fmt.Errorf("upstream: digest %q: %w", d, ocierr.DigestInvalid)
	}
	return nil
}

// parseRef returns the digest ref names, or "" for a tag. A string that is
// neither is ManifestUnknown: no such manifest can exist.
func parseRef(ref string) (string, error) {
	if strings.Contains(ref, ":") {
		if err := validateDigest(ref); err != nil {
			return "", err
		}
		return ref, nil
	}
	if !tagRe.MatchString(ref) {
		return "", fmt.Errorf("upstream: reference %q: %w", ref, ocierr.ManifestUnknown)
	}
	return "", nil
}

// digestOf hashes body with the algorithm of like ("sha256:..." or
// "sha512:..."); sha256 when like is empty.
func digestOf(body []byte, like string) string {
	if strings.HasPrefix(like, "sha512:") {
		sum := sha512.Sum512(body)
		return "sha512:" + hex.EncodeToString(sum[:])
	}
	sum := sha256.Sum256(body)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// sameAlgorithm reports whether two digests use the same algorithm.
func sameAlgorithm(a, b string) bool {
	aa, _, _ := strings.Cut(a, ":")
	ba, _, _ := strings.Cut(b, ":")
	return aa == ba
}
