// Package config owns cairn's configuration file: the typed, versioned YAML
// contract (version 1), its defaults, its validation and its effective,
// redacted rendering for `cairn check-config`.
//
// Load decodes strictly (an unknown key is a problem), applies the defaults
// documented on the Default* constants and validates, returning every problem
// at once in a *ValidationError whose lines start with the YAML path of the
// field they are about (`upstreams[1].url: ...`). Default returns the embedded
// default.yaml, which mirrors the public registries into ./data.
//
// Reloadable is the reload policy: which fields a SIGHUP may apply to a
// running node and which need a restart; Diff names the fields two
// configs differ in, by YAML path, for the reload's log.
//
// The package reads no secrets: password_file paths are checked to exist and
// are read by the upstream client; auth.htpasswd_file likewise, read by the
// auth package. The auth section's actions, user names and repository globs
// are checked here with a copy of the auth package's rules (config must not
// import auth); a test in auth keeps the two in step. It holds no
// package-level mutable state.
//
// Imports: the standard library, gopkg.in/yaml.v3 and internal/route (pin
// rules are parsed where names are). It must not import any other cairn
// package; every other package may import it (in practice
// cmd/cairn does, and hands the typed values to the rest).
package config
