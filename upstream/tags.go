package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/cairn-mirror/cairn/internal/ocierr"
)

// maxTagsBody caps a tag list page.
const maxTagsBody = 4 << 20

// Tags GETs one page of repo's tag list: /v2/<repo>/tags/list?n=&last=
// (n <= 0 sends no n, last "" no last). more reports a Link rel="next"
// header: the caller asks again with last set to the final tag.
func (c *Client) Tags(ctx context.Context, repo string, n int, last string) (tags []string, more bool, err error) {
	if err := validateRepo(repo); err != nil {
		return nil, false, err
	}
	repo = c.upstreamRepo(repo)
	q := url.Values{}
	if n > 0 {
		q.Set("n", strconv.Itoa(n))
	}
	if last != "" {
		q.Set("last", last)
	}
	resp, err := c.do(ctx, OpTags, repo, c.newRequest(http.MethodGet, "/v2/"+repo+"/tags/list", q))
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTagsBody+1))
	if err == nil && len(body) > maxTagsBody {
		err = fmt.Errorf("tag list over %d bytes, page with n", maxTagsBody)
	}
	var list struct {
		Tags []string `json:"tags"`
	}
	if err == nil {
		err = json.Unmarshal(body, &list)
	}
	if err != nil {
		return nil, false, fmt.Errorf("upstream %s: %s: %w: %w", c.namespace, OpTags, ocierr.Unavailable, err)
	}
	return list.Tags, hasNextLink(resp.Header.Values("Link")), nil
}

// hasNextLink reports whether any Link header value has rel="next".
func hasNextLink(values []string) bool {
	for _, v := range values {
		for link := range strings.SplitSeq(v, ",") {
			_, params, _ := strings.Cut(link, ";")
			for p := range strings.SplitSeq(params, ";") {
				k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
				if strings.EqualFold(k, "rel") && strings.EqualFold(strings.Trim(val, `"`), "next") {
					return true
				}
			}
		}
	}
	return false
}
