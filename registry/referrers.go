package registry

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/cairn-mirror/cairn/internal/oci"
	"github.com/cairn-mirror/cairn/internal/ocierr"
	"github.com/cairn-mirror/cairn/internal/route"
)

// ReferrersLister is the optional ability of a Puller to answer the OCI
// referrers API. Implementations are safe for concurrent use.
type ReferrersLister interface {
	// Referrers returns an OCI image index of the manifests whose subject
	// is digest, only those of artifactType when it is not empty; filtered
	// reports that the filter was applied. No referrers is an empty index,
	// not an error. Errors wrap ocierr codes.
	Referrers(ctx context.Context, repo route.Repo, digest, artifactType string) (index []byte, filtered bool, err error)
}

func (h *Handler) referrers(w *responseWriter, r *http.Request, req *request) error {
	lister, ok := h.puller.(ReferrersLister)
	if !ok {
		return ocierr.WithStatus(fmt.Errorf("the referrers API is not served: %w", ocierr.Unsupported), http.StatusNotFound)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return fmt.Errorf("%s %s: %w", r.Method, req.path.Kind, ocierr.Unsupported)
	}
	var artifactType string
	if r.URL.RawQuery != "" {
		artifactType = r.URL.Query().Get("artifactType")
	}
	index, filtered, err := lister.Referrers(r.Context(), req.repo, req.path.Reference, artifactType)
	if err != nil {
		return err
	}
	hdr := w.Header()
	hdr["Content-Type"] = []string{oci.MediaTypeOCIIndex}
	hdr["Content-Length"] = []string{strconv.Itoa(len(index))}
	if filtered {
		hdr["Oci-Filters-Applied"] = []string{"artifactType"}
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, err = w.Write(index)
	}
	return err
}
