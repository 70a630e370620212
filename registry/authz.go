package registry

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/internal/route"
)

// Action is what a request does to a repository. The registry decides
// which one a request needs; an Authorizer decides whether it may.
type Action uint8

// The actions (the auth config's pull, push, delete, replicate).
const (
	ActionPull      Action = iota + 1 // read manifests, blobs, tags, referrers
	ActionPush                        // write into a hosted namespace
	ActionDelete                      // delete manifests, blobs, tags
	ActionReplicate                   // write into a mirror namespace
)

func (a Action) String() string {
	switch a {
	case ActionPull:
		return "pull"
	case ActionPush:
		return "push"
	case ActionDelete:
		return "delete"
	case ActionReplicate:
		return "replicate"
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// Authorizer decides who is asking and whether they may act on a
// repository. Implementations are safe for concurrent use, never log or
// return credentials, and should be fast (they run on every request).
type Authorizer interface {
	// Authorize returns the authenticated user ("" for an anonymous
	// client) when r may take action on the canonical repository repo.
	// repo "" asks about the API itself (GET /v2/): any client that may
	// do something there, or that holds valid credentials, passes.
	// Errors wrap ocierr.Unauthorized (credentials missing or wrong) or
	// ocierr.Denied (authenticated, not allowed); an Unauthorized error
	// may carry the WWW-Authenticate value to send (see Challenger).
	Authorize(r *http.Request, repo string, action Action) (user string, err error)
}

// Challenger is the optional ability of an Unauthorized error to name the
// WWW-Authenticate challenge the response carries.
type Challenger interface{ Challenge() string }

// pullOnly is the Authorizer of a Handler built without one: every client
// is anonymous and may only pull.
type pullOnly struct{}

func (pullOnly) Authorize(_ *http.Request, _ string, action Action) (string, error) {
	if action == ActionPull || action == 0 {
		return "", nil
	}
	return "", challengeError{fmt.Errorf("%s needs credentials, and this cairn node has no users (no auth: section): it is pull-only: %w", action, ocierr.Unauthorized)}
}

type challengeError struct{ error }

func (e challengeError) Unwrap() error     { return e.error }
func (e challengeError) Challenge() string { return `Basic realm="cairn", charset="UTF-8"` }

// writeAction is the action a write into repo needs: push in a hosted
// namespace, replicate in a mirror one.
func (h *Handler) writeAction(repo route.Repo) Action {
	if h.router.Mirror(repo.Namespace) {
		return ActionReplicate
	}
	return ActionPush
}

// authorize checks action on the request's repository and records the user.
func (h *Handler) authorize(r *http.Request, req *request, action Action) error {
	repo := ""
	if req.repo.Namespace != "" {
		repo = req.repo.Canonical()
	}
	user, err := h.authz.Authorize(r, repo, action)
	if err != nil {
		if _, ok := ocierr.CodeOf(err); !ok {
			return fmt.Errorf("authorizing %s on %s: %w", action, repo, err)
		}
		return err
	}
	req.user = user
	return nil
}

// allowed reports whether the request's client may also take action on
// repo (a mount's source, an index's absent children).
func (h *Handler) allowed(r *http.Request, repo route.Repo, action Action) bool {
	_, err := h.authz.Authorize(r, repo.Canonical(), action)
	return err == nil
}

// setChallenge adds the WWW-Authenticate header an Unauthorized error asks for.
func setChallenge(hdr http.Header, err error) {
	var c Challenger
	if errors.As(err, &c) && c.Challenge() != "" {
		hdr.Set("WWW-Authenticate", c.Challenge())
	}
}
