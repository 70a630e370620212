// Package auth decides who is asking and what they may do: it reads an
// htpasswd file of bcrypt entries, checks HTTP Basic credentials against it
// (an Authenticator), and answers, from the access rules of the `auth:`
// config section, which actions a user (or an anonymous client) may take on
// a repository (Rules).
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
// The package declares no interfaces: the registry declares the small ones
// it calls (an authenticator, an authorizer), which *Authenticator and
// *Rules implement. It holds no package-level mutable state.
//
// Imports: the standard library, golang.org/x/crypto/bcrypt and
// github.com/hashicorp/golang-lru/v2. It must not import any cairn package
// but internal/...; it imports none today: internal/config keeps the auth
// section as strings, cmd/cairn turns them into Rules with ParseActions and
// NewRules. config checks those strings with its own copy of the grammar,
// which config_agree_test.go (and its fuzz target) keeps in step.
package auth
