package upstream

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/cairn-mirror/cairn/internal/ocierr"
)

// ErrDigestMismatch means the upstream sent content that does not hash to
// the digest asked for, or to the Docker-Content-Digest it announced. Errors
// wrapping it also wrap ocierr.Unavailable: the upstream misbehaved, the
// client asked for nothing wrong, and nothing from that answer is cached.
var ErrDigestMismatch = errors.New("upstream digest mismatch")

// maxErrorBody caps how much of an error body is read.
const maxErrorBody = 64 << 10

// StatusError is a non-2xx answer from the upstream (or from its token
// server during the handshake, with Op "ping"). It unwraps to Code.
type StatusError struct {
	Namespace string
	Op        string
	Status    int
	Code      ocierr.Code
	Message   string
	Retry     time.Duration // from Retry-After on a 429; 0 if absent
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("upstream %s: %s: %d %s", e.Namespace, e.Op, e.Status, e.Code)
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

func (e *StatusError) Unwrap() error { return e.Code }

// RetryAfter is when the upstream said to come back (a 429's Retry-After);
// the registry passes it on to the client.
func (e *StatusError) RetryAfter() time.Duration { return e.Retry }

// classify maps a non-2xx answer to a StatusError:
//   - 404: the body's code if it is MANIFEST_UNKNOWN, BLOB_UNKNOWN or
//     NAME_UNKNOWN, else by op (manifest, blob, tags; anything else, such
//     as a ping, is Unavailable: that host is not a registry);
//   - 401 Unauthorized, 403 Denied, 429 TooManyRequests with RetryAfter;
//   - 5xx Unavailable;
//   - 416 RangeInvalid;
//   - other 4xx: the body's code if it is a known OCI code (the upstream
//     rejected the name or reference, so the client learns why), else
//     Unavailable (cairn and the upstream disagree; not the client's fault).
func classify(ns, op string, status int, h http.Header, bodyCode ocierr.Code, msg string, now time.Time) *StatusError {
	e := &StatusError{Namespace: ns, Op: op, Status: status, Message: msg}
	switch {
	case status == http.StatusNotFound:
		e.Code = notFoundCode(op, bodyCode)
	case status == http.StatusUnauthorized:
		e.Code = ocierr.Unauthorized
	case status == http.StatusForbidden:
		e.Code = ocierr.Denied
	case status == http.StatusTooManyRequests:
		e.Code = ocierr.TooManyRequests
		e.Retry = parseRetryAfter(h.Get("Retry-After"), now)
	case status == http.StatusRequestedRangeNotSatisfiable:
		e.Code = ocierr.RangeInvalid
	case status >= 400 && status < 500 && knownCodes[bodyCode]:
		e.Code = bodyCode
	default:
		e.Code = ocierr.Unavailable
	}
	return e
}

func notFoundCode(op string, bodyCode ocierr.Code) ocierr.Code {
	switch bodyCode {
	case ocierr.ManifestUnknown, ocierr.BlobUnknown, ocierr.NameUnknown:
		return bodyCode
	}
	switch op {
	case OpManifestGet, OpManifestHead:
		return ocierr.ManifestUnknown
	case OpBlobGet, OpBlobHead:
		return ocierr.BlobUnknown
	case OpTags:
		return ocierr.NameUnknown
	}
	return ocierr.Unavailable
}

var knownCodes = map[ocierr.Code]bool{
	ocierr.BlobUnknown: true, ocierr.BlobUploadInvalid: true, ocierr.BlobUploadUnknown: true,
	ocierr.DigestInvalid: true, ocierr.ManifestBlobUnknown: true, ocierr.ManifestInvalid: true,
	ocierr.ManifestUnknown: true, ocierr.NameInvalid: true, ocierr.NameUnknown: true,
	ocierr.SizeInvalid: true, ocierr.Unauthorized: true, ocierr.Denied: true,
	ocierr.Unsupported: true, ocierr.TooManyRequests: true,
}

// parseRetryAfter reads delay-seconds or an HTTP date; 0 if absent or bad.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		return max(time.Duration(s)*time.Second, 0)
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

// parseErrorBody returns the first code and message of an OCI error body.
func parseErrorBody(body []byte) (ocierr.Code, string) {
	var b struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &b) != nil || len(b.Errors) == 0 {
		return "", strings.TrimSpace(string(body))
	}
	return ocierr.Code(b.Errors[0].Code), b.Errors[0].Message
}

// responseError classifies resp, reading (capped) and closing its body.
func responseError(ns, op string, resp *http.Response) *StatusError {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	code, msg := parseErrorBody(body)
	return classify(ns, op, resp.StatusCode, resp.Header, code, truncate(msg), time.Now())
}

// truncate keeps error messages short enough to log.
func truncate(msg string) string {
	if len(msg) > 512 {
		return msg[:512] + "..."
	}
	return msg
}

// requestError wraps a failure that produced no usable response. An HTTP
// error from ggcr's handshake (ping or token exchange) is classified like
// a response; everything else wraps ocierr.Unavailable and the cause.
func requestError(ns, op string, err error) error {
	var terr *transport.Error
	if errors.As(err, &terr) {
		var code ocierr.Code
		if len(terr.Errors) > 0 {
			code = ocierr.Code(terr.Errors[0].Code)
		}
		se := classify(ns, OpPing, terr.StatusCode, http.Header{}, code, truncate(terr.Error()), time.Now())
		return fmt.Errorf("%s: %w", op, se)
	}
	return fmt.Errorf("upstream %s: %s: %w: %w", ns, op, ocierr.Unavailable, err)
}

// retryableStatus reports the statuses an idempotent request is retried on.
// 429 and other 4xx never are: the caller serves stale instead of waiting.
func retryableStatus(status int) bool {
	switch status {
	case http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}
