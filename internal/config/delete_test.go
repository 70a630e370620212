package config

import (
	"strings"
	"testing"
)

func TestDeleteSection(t *testing.T) {
	pw := htpasswdFile(t)
	grant := `auth:
  htpasswd_file: '` + pw + `'
  access:
    - users: [ci]
      repositories: ["registry.internal/**"]
      actions: [pull, push, delete]
`
	c := mustLoad(t, "version: 1\n"+grant+`upstreams:
  - name: registry.internal
    delete: {tags: true, blobs: true}
  - name: ghcr.io
    url: https://ghcr.io
`)
	if got := c.Upstreams[0].Delete; got != (Delete{Tags: true, Blobs: true}) {
		t.Errorf("registry.internal delete = %+v, want tags and blobs", got)
	}
	if c.Upstreams[1].Delete.Any() {
		t.Errorf("ghcr.io delete = %+v, want none by default", c.Upstreams[1].Delete)
	}
	for _, tc := range []struct{ name, yml, want string }{
		{"unknown key", "version: 1\n" + grant + "upstreams:\n  - name: registry.internal\n    delete: {tag: true}\n", "tag"},
		{"not a bool", "version: 1\n" + grant + "upstreams:\n  - name: registry.internal\n    delete: {tags: maybe}\n", "delete"},
		{"nobody may delete", "version: 1\nupstreams:\n  - name: registry.internal\n    delete: {manifests: true}\n", "upstreams[0].delete: deletes are enabled, but no auth.access rule grants"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.yml)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load: %v, want a problem mentioning %q", err, tc.want)
			}
		})
	}
}
