package upstream

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"
)

// do sends req (GET or HEAD) and returns a 2xx response; anything else is
// a classified error. Connection errors (no response) and 500/502/503/504
// are retried up to c.opts.retries times with doubling backoff; 429 and
// other 4xx never are.
func (c *Client) do(ctx context.Context, op, repo string, req *http.Request) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		resp, err := c.attempt(ctx, op, repo, req)
		if err == nil {
			if resp.StatusCode >= 200 && resp.StatusCode < 300 {
				return resp, nil
			}
			err = responseError(c.namespace, op, resp)
			c.noteTooMany(op, err)
		}
		if attempt >= c.opts.retries || !retryable(ctx, err) {
			return nil, err
		}
		c.opts.logger.DebugContext(ctx, "upstream retry", "upstream", c.namespace, "op", op, "attempt", attempt+1, "err", err)
		if !sleep(ctx, c.opts.backoff<<attempt) {
			return nil, err
		}
	}
}

// attempt sends one request through repo's transport, once the
// endpoint's gate admits it; the response body holds the slot until it is
// closed.
func (c *Client) attempt(ctx context.Context, op, repo string, req *http.Request) (*http.Response, error) {
	rt, err := c.transportFor(ctx, repo)
	if err != nil {
		return nil, requestError(c.namespace, op, err)
	}
	release, err := c.enter(ctx, op)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Transport: rt} // default redirect policy: see blob.go
	start := time.Now()
	resp, err := hc.Do(req.Clone(ctx))
	status := 0
	if err == nil {
		status = resp.StatusCode
	}
	c.opts.metrics.observe(c.opts.metricsNS, c.endpoint, op, status, time.Since(start))
	if err != nil {
		release()
		return nil, requestError(c.namespace, op, err)
	}
	resp.Body = &releasingBody{ReadCloser: resp.Body, release: release}
	c.noteRateLimit(resp.Header)
	return resp, nil
}

// retryable: a retryable status, or a failure with no response at all
// (*url.Error from http.Client, also inside a failed ping), unless the
// caller's context is done.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var se *StatusError
	if errors.As(err, &se) {
		return retryableStatus(se.Status)
	}
	var ue *url.Error
	return errors.As(err, &ue)
}

// sleep waits d or until ctx is done; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
