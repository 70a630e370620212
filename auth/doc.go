// Package auth decides who is asking and what they may do: it reads an
// htpasswd file of bcrypt entries, checks HTTP Basic credentials against it
// (an Authenticator), and answers, from the access rules of the `auth:`
// config section, which actions a user (or an anonymous client) may take on
// a repository (Rules). Authorizer puts these together for the API.
//
// Names are canonical, <namespace>/<repo> (docker.io/library/alpine): the
// registry canonicalises a request's name with internal/route before it asks.
// Repository globs read like the pin globs of internal/route: "*" matches
// within one path component, "**" (a whole component) any number of
// components, zero included, so "ghcr.io/org/**" covers ghcr.io/org and
// everything under it. Unlike a pin glob, a leading "**" spans components
// too: "**" alone covers every repository, "**/app" every repository named
// app. Rule.Users may hold "*" (AnyUser): any authenticated user.
//
// Secrets: nothing here logs. Errors name htpasswd line numbers and user
// names, never a hash or a password; ParseBasic reports only ok or not.
// Authenticator.Check takes as long for an unknown user as for a wrong
// password (both run one bcrypt of the same cost), and remembers only
// successful checks, for a short time, as an HMAC of the password under a
// per-process random key.
//
// Authorizer is the API's whole policy, built from the auth: section
// (NewAuthorizer, Reload): Basic users, tokens and the token endpoint
// (ServeToken at TokenPath), mutual TLS users, the access rules, and the
// failed-login limiter (LoginLimiter) in front of every password check.
// Its Authorize has the shape of the registry's Authorizer interface with
// this package's Action; registry.Action is a type of the registry's own,
// and cmd/cairn maps one onto the other in a few lines, so that neither
// package imports the other.
//
// The package declares no interfaces. It holds no package-level mutable
// state.
//
// Imports: the standard library, golang.org/x/crypto/bcrypt,
// github.com/hashicorp/golang-lru/v2, and internal/config (the auth
// section), internal/route (the token endpoint canonicalises scope names)
// and internal/ocierr. It must not import any cairn package but
// internal/... . config checks the auth section's strings with its own
// copy of the grammar (config must not import auth), which
// config_agree_test.go (and its fuzz target) keeps in step.
package auth
