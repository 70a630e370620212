// Package route parses OCI Distribution API paths (/v2/...) and maps the
// repository name a client sent to cairn's namespace and canonical name
// (<namespace>/<repo>), by ?ns=, by a leading host component, or by the
// default namespace, adding library/ where the namespace asks for it.
// Pin rules (config cache.pin, `cairn cache pin`) are canonicalised by the
// same router (Router.PinRule), so a pin names what a pull stores.
//
// It is the only place that parses names and references; the registry calls
// it for every request. It imports nothing from the project but internal/ocierr.
package route
