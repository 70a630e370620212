package config

import (
	"github.com/cairn-mirror/cairn/internal/route"
	"slices"

	"fmt"
	"os"
	"regexp"
	"strings"
)

// ValidationError lists every problem found in a config. Each problem starts
// with the YAML path of the field it is about (`upstreams[1].url: ...`).
type ValidationError struct {
	Problems []string
}

// Error lists the problems one per line.
func (e *ValidationError) Error() string {
	if len(e.Problems) == 1 {
		return "invalid config: " + e.Problems[0]
	}
	return fmt.Sprintf("invalid config, %d problems:\n  %s", len(e.Problems), strings.Join(e.Problems, "\n  "))
}

type problems []string

func (p *problems) addf(path, format string, args ...any) {
	*p = append(*p, path+": "+fmt.Sprintf(format, args...))
}

// check records msg unless it is empty.
func (p *problems) check(path, msg string) {
	if msg != "" {
		*p = append(*p, path+": "+msg)
	}
}

var (
	logLevels  = map[string]bool{"debug": true, "info": true, "warn": true, "error": true}
	logFormats = map[string]bool{"text": true, "json": true}
	siteRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
)

// Validate checks c, which should have had ApplyDefaults, and returns a
// *ValidationError listing every problem, or nil. It checks that each
// password_file, the admin.token_file and the auth.htpasswd_file exist,
// relative to the working directory, but does not read them.
func (c *Config) Validate() error {
	var p problems
	if c.Version != Version {
		p.addf("version", "got %d, want %d", c.Version, Version)
	}
	p.check("listen", checkListen(c.Listen))
	if c.AdminListen != "" { // "" disables the admin listener
		p.check("admin_listen", checkListen(c.AdminListen))
	}
	if c.DataDir == "" {
		p.addf("data_dir", "empty, want a directory")
	}
	if !siteRE.MatchString(c.Site) {
		p.addf("site", "%q is not a site name: 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit", c.Site)
	}
	if !logLevels[c.Log.Level] {
		p.addf("log.level", "got %q, want debug, info, warn or error", c.Log.Level)
	}
	if !logFormats[c.Log.Format] {
		p.addf("log.format", "got %q, want text or json", c.Log.Format)
	}
	p.check("cache.tag_ttl", checkDuration(c.Cache.TagTTL))
	p.check("cache.fill_idle_timeout", checkDuration(c.Cache.FillIdleTimeout))
	p.check("cache.head_timeout", checkDuration(c.Cache.HeadTimeout))
	p.check("cache.request_timeout", checkDuration(c.Cache.RequestTimeout))
	p.check("cache.referrers_ttl", checkDuration(c.Cache.ReferrersTTL))
	p.check("cache.breaker_cooldown", checkDuration(c.Cache.BreakerCooldown))
	p.check("cache.change_log_retention", checkDuration(c.Cache.ChangeLogRetention))
	p.check("uploads.expire", checkDuration(c.Uploads.Expire))
	c.validateLimits(&p)
	c.validatePins(&p)
	if !(c.Cache.EvictHigh > 0 && c.Cache.EvictHigh <= 1) {
		p.addf("cache.evict_high", "must be in (0, 1], got %v", c.Cache.EvictHigh)
	}
	if !(c.Cache.EvictLow > 0 && c.Cache.EvictLow < c.Cache.EvictHigh) {
		p.addf("cache.evict_low", "must be > 0 and below evict_high (%v), got %v", c.Cache.EvictHigh, c.Cache.EvictLow)
	}
	if c.Cache.BreakerFailures < 0 {
		p.addf("cache.breaker_failures", "must be > 0, got %d", c.Cache.BreakerFailures)
	}
	if c.Admin.TokenFile != "" {
		p.check("admin.token_file", checkFile(c.Admin.TokenFile))
	}
	c.validateUpstreams(&p)
	c.validateAuth(&p)
	c.validateAnonymousCredentials(&p)
	c.validateDeletes(&p)
	c.validateTLS(&p)
	if len(p) == 0 {
		return nil
	}
	return &ValidationError{Problems: p}
}

// checkFile says why path is not a readable-looking file, or "".
func checkFile(path string) string {
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return err.Error()
	case fi.IsDir():
		return path + " is a directory"
	}
	return ""
}

func checkDuration(d Duration) string {
	if d <= 0 {
		return "must be > 0, got " + d.String()
	}
	return ""
}

// validateUpstreams checks each namespace, and that names and aliases are
// unique and at most one namespace is the default.
func (c *Config) validateUpstreams(p *problems) {
	if len(c.Upstreams) == 0 {
		p.addf("upstreams", "none, want at least one namespace")
		return
	}
	usedBy := map[string]string{} // lower-case host -> path of its first use
	claim := func(path, host string) {
		if host == "" {
			return
		}
		key := strings.ToLower(host)
		if first, ok := usedBy[key]; ok {
			p.addf(path, "%q is already used by %s", host, first)
			return
		}
		usedBy[key] = path
	}
	defaultAt := ""
	for i, u := range c.Upstreams {
		at := fmt.Sprintf("upstreams[%d]", i)
		u.validate(at, p)
		claim(at+".name", u.Name)
		for j, a := range u.Aliases {
			claim(fmt.Sprintf("%s.aliases[%d]", at, j), a)
		}
		if u.Default {
			if defaultAt != "" {
				p.addf(at+".default", "%s is already the default namespace, at most one may be", defaultAt)
			} else {
				defaultAt = at
			}
		}
	}
}

func (u Upstream) validate(at string, p *problems) {
	switch {
	case u.Name == "":
		p.addf(at+".name", "empty, want the registry host this namespace stands for, like ghcr.io")
	case !u.Wildcard():
		p.check(at+".name", checkHost(u.Name))
	}
	u.validateEndpoints(at, p)
	for j, a := range u.Aliases {
		p.check(fmt.Sprintf("%s.aliases[%d]", at, j), checkHost(a))
	}
	if u.TagTTL != nil {
		p.check(at+".tag_ttl", checkDuration(*u.TagTTL))
	}
	if u.FillIdleTimeout != nil {
		p.check(at+".fill_idle_timeout", checkDuration(*u.FillIdleTimeout))
	}
	for name, d := range map[string]*Duration{"head_timeout": u.HeadTimeout, "request_timeout": u.RequestTimeout, "referrers_ttl": u.ReferrersTTL} {
		if d != nil {
			p.check(at+"."+name, checkDuration(*d))
		}
	}
	if u.RateLimitFloor < 0 {
		p.addf(at+".ratelimit_floor", "must be >= 0, got %d", u.RateLimitFloor)
	}
	u.validateCredentials(at, p)
}

// validateDeletes: deletes need someone granted the delete action, or
// nobody could ever use them (a sign the operator forgot the grant).
func (c *Config) validateDeletes(p *problems) {
	granted := slices.Contains(c.Auth.Anonymous, "delete")
	for _, r := range c.Auth.Access {
		granted = granted || slices.Contains(r.Actions, "delete")
	}
	for i, u := range c.Upstreams {
		if u.Delete.Any() && !granted {
			p.addf(fmt.Sprintf("upstreams[%d].delete", i), "deletes are enabled, but no auth.access rule grants the delete action: nobody could use them")
		}
	}
}

func (u Upstream) validateCredentials(at string, p *problems) {
	if !u.Mirror() {
		for _, f := range []struct {
			name string
			set  bool
		}{{"username", u.Username != ""}, {"password_file", u.PasswordFile != ""}, {"keychain", u.Keychain}} {
			if f.set {
				p.addf(at+"."+f.name, "a hosted namespace (no url) has no upstream to log in to")
			}
		}
		return
	}
	switch {
	case u.Keychain && (u.Username != "" || u.PasswordFile != ""):
		p.addf(at+".keychain", "excludes username and password_file, use one way to log in")
	case u.Username != "" && u.PasswordFile == "":
		p.addf(at+".username", "needs password_file")
	case u.PasswordFile != "" && u.Username == "":
		p.addf(at+".password_file", "needs username")
	}
	if u.PasswordFile != "" {
		if fi, err := os.Stat(u.PasswordFile); err != nil {
			p.addf(at+".password_file", "%v", err)
		} else if fi.IsDir() {
			p.addf(at+".password_file", "%s is a directory", u.PasswordFile)
		}
	}
}

// isPlatform: os/arch or os/arch/variant, no part empty.
func isPlatform(s string) bool {
	parts := strings.Split(s, "/")
	return len(parts) >= 2 && len(parts) <= 3 && !slices.Contains(parts, "")
}

// validatePins: each rule parses and names a configured namespace first.
func (c *Config) validatePins(p *problems) {
	names := map[string]bool{}
	for _, u := range c.Upstreams {
		names[u.Name] = true
	}
	for i, pl := range c.Cache.PinPlatforms {
		if !isPlatform(pl) {
			p.addf(fmt.Sprintf("cache.pin_platforms[%d]", i), "%q is not a platform like linux/amd64 or linux/arm64/v8", pl)
		}
	}
	if !isPlatform(c.Cache.DefaultPlatform) {
		p.addf("cache.default_platform", "%q is not a platform like linux/amd64 or linux/arm64/v8", c.Cache.DefaultPlatform)
	}
	for i, rule := range c.Cache.Pin {
		at := fmt.Sprintf("cache.pin[%d]", i)
		if _, err := route.ParsePinRule(rule); err != nil {
			p.addf(at, "%v", err)
			continue
		}
		if ns, _, _ := strings.Cut(rule, "/"); !names[ns] {
			p.addf(at, "%q does not start with a configured namespace (canonical names: <namespace>/<repo>)", rule)
		}
	}
}

// validateLimits checks the uploads' and the listener's bounds.
func (c *Config) validateLimits(p *problems) {
	for _, f := range []struct {
		at string
		n  int64
	}{
		{"uploads.max_size", int64(c.Uploads.MaxSize)},
		{"uploads.max_sessions", int64(c.Uploads.MaxSessions)},
		{"uploads.max_sessions_per_user", int64(c.Uploads.MaxSessionsPerUser)},
		{"limits.max_connections", int64(c.Limits.MaxConnections)},
		{"limits.max_header_bytes", int64(c.Limits.MaxHeaderBytes)},
	} {
		if f.n <= 0 {
			p.addf(f.at, "must be > 0, got %d", f.n)
		}
	}
	if c.Uploads.MaxSessionsPerUser > c.Uploads.MaxSessions {
		p.addf("uploads.max_sessions_per_user", "%d is more than uploads.max_sessions (%d)", c.Uploads.MaxSessionsPerUser, c.Uploads.MaxSessions)
	}
	if c.Limits.MinSendRate != nil && *c.Limits.MinSendRate < 0 {
		p.addf("limits.min_send_rate", "must be >= 0, got %d", *c.Limits.MinSendRate)
	}
	p.check("limits.min_send_window", checkDuration(c.Limits.MinSendWindow))
	if c.Cache.FillMaxDuration < 0 {
		p.addf("cache.fill_max_duration", "must be >= 0 (0: no bound), got %s", c.Cache.FillMaxDuration)
	}
}
