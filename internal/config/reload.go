package config

import (
	"reflect"
	"slices"
	"strings"
)

// Reloadable is running with what a reload (SIGHUP) may change taken from
// next, and everything else kept as it runs. Taken from next: the auth
// section, the certificate's files (when TLS is on in both), and each
// namespace's cache settings (tag_ttl, serve_stale, serve_stale_on_404,
// fill_idle_timeout, head_timeout, request_timeout, referrers_ttl,
// ratelimit_floor, anonymous_pulls_use_credentials) and credentials (username,
// password_file, keychain), the credentials only while the namespace
// keeps using them or not (the cache's tenancy depends on it). Kept:
// listen, admin_listen, data_dir, site, log, admin, TLS on or off,
// client_ca_file, min_version and admin, the cache section's own fields
// (max_size, evict marks, pins, breaker, fill_max_duration), uploads,
// limits, and which namespaces there are with their url, aliases,
// library_prefix, default and delete.
//
// Neither argument is changed; the result shares no slice of upstreams
// with them. It is not validated: Diff(result, next) names what needs a
// restart, and the caller validates the result before it applies it.
func Reloadable(running, next *Config) *Config {
	eff := *running
	eff.Auth = next.Auth
	if running.TLS.Enabled() && next.TLS.Enabled() {
		eff.TLS.CertFile, eff.TLS.KeyFile = next.TLS.CertFile, next.TLS.KeyFile
	}
	// The cache section's per-namespace defaults: each namespace has them
	// applied already, compared below; these only keep the diff quiet.
	eff.Cache.TagTTL, eff.Cache.ServeStale, eff.Cache.ServeStaleOn404 = next.Cache.TagTTL, next.Cache.ServeStale, next.Cache.ServeStaleOn404
	eff.Cache.FillIdleTimeout, eff.Cache.HeadTimeout, eff.Cache.RequestTimeout = next.Cache.FillIdleTimeout, next.Cache.HeadTimeout, next.Cache.RequestTimeout
	eff.Cache.ReferrersTTL = next.Cache.ReferrersTTL
	eff.Upstreams = slices.Clone(running.Upstreams)
	for i, u := range eff.Upstreams {
		j := slices.IndexFunc(next.Upstreams, func(n Upstream) bool { return n.Name == u.Name })
		if j < 0 {
			continue
		}
		n := next.Upstreams[j]
		u.TagTTL, u.ServeStale, u.ServeStaleOn404 = n.TagTTL, n.ServeStale, n.ServeStaleOn404
		u.FillIdleTimeout, u.HeadTimeout, u.RequestTimeout = n.FillIdleTimeout, n.HeadTimeout, n.RequestTimeout
		u.ReferrersTTL = n.ReferrersTTL
		u.RateLimitFloor, u.AnonymousPullsUseCredentials = n.RateLimitFloor, n.AnonymousPullsUseCredentials
		if u.Credentialed() == n.Credentialed() {
			u.Username, u.PasswordFile, u.Keychain, u.Credentials = n.Username, n.PasswordFile, n.Keychain, n.Credentials
			if sameURLs(u.Endpoints, n.Endpoints) {
				u.Endpoints = slices.Clone(u.Endpoints)
				for k := range u.Endpoints {
					u.Endpoints[k].Credentials = n.Endpoints[k].Credentials
				}
			}
		}
		eff.Upstreams[i] = u
	}
	return &eff
}

// sameURLs reports whether a and b are the same endpoints, in order.
func sameURLs(a, b []Endpoint) bool {
	return slices.EqualFunc(a, b, func(x, y Endpoint) bool { return x.URL == y.URL })
}

// Diff names the fields that differ between a and b by their YAML paths,
// in the order of the file's structure: upstreams by name
// (upstreams[docker.io].tag_ttl, upstreams[quay.io] (added) or
// (removed)), other lists whole (auth.access). Values are never named:
// some are secrets' paths. Equal configs give nil.
func Diff(a, b *Config) []string {
	var out []string
	diffValue("", reflect.ValueOf(*a), reflect.ValueOf(*b), &out)
	return out
}

func diffValue(path string, a, b reflect.Value, out *[]string) {
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				*out = append(*out, path)
			}
			return
		}
		diffValue(path, a.Elem(), b.Elem(), out)
	case reflect.Struct:
		t := a.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			if path != "" {
				name = path + "." + name
			}
			diffValue(name, a.Field(i), b.Field(i), out)
		}
	case reflect.Slice:
		if ua, ok := a.Interface().([]Upstream); ok {
			diffUpstreams(path, ua, b.Interface().([]Upstream), out)
			return
		}
		if (a.Len() != 0 || b.Len() != 0) && !reflect.DeepEqual(a.Interface(), b.Interface()) {
			*out = append(*out, path)
		}
	default:
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			*out = append(*out, path)
		}
	}
}

func diffUpstreams(path string, a, b []Upstream, out *[]string) {
	byName := func(us []Upstream, name string) (Upstream, bool) {
		i := slices.IndexFunc(us, func(u Upstream) bool { return u.Name == name })
		if i < 0 {
			return Upstream{}, false
		}
		return us[i], true
	}
	for _, u := range a {
		at := path + "[" + u.Name + "]"
		if n, ok := byName(b, u.Name); ok {
			diffValue(at, reflect.ValueOf(u), reflect.ValueOf(n), out)
		} else {
			*out = append(*out, at+" (removed)")
		}
	}
	for _, n := range b {
		if _, ok := byName(a, n.Name); !ok {
			*out = append(*out, path+"["+n.Name+"] (added)")
		}
	}
}
