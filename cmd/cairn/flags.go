package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/cairn-mirror/cairn/internal/config"
	"github.com/cairn-mirror/cairn/internal/devca"
)

// configFlags are the operational knobs; each has an environment variable.
// Precedence is flag > env > file > default (resolveConfig).
func configFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Aliases: []string{"c"}, EnvVars: []string{"CAIRN_CONFIG"}, Usage: "config file (default: the embedded default, mirroring the public registries)"},
		&cli.StringFlag{Name: "listen", EnvVars: []string{"CAIRN_LISTEN"}, Usage: "OCI Distribution API address"},
		&cli.StringFlag{Name: "admin-listen", EnvVars: []string{"CAIRN_ADMIN_LISTEN"}, Usage: "admin address (/metrics /healthz /readyz /debug/pprof); empty disables"},
		&cli.StringFlag{Name: "data-dir", EnvVars: []string{"CAIRN_DATA_DIR"}, Usage: "where blobs and metadata live"},
		&cli.StringFlag{Name: "log-level", EnvVars: []string{"CAIRN_LOG_LEVEL"}, Usage: "debug, info, warn or error"},
		&cli.StringFlag{Name: "log-format", EnvVars: []string{"CAIRN_LOG_FORMAT"}, Usage: "text or json"},
	}
}

// resolveConfig is the one place precedence is decided: the file (or the
// embedded default), then every flag or CAIRN_* variable that is set
// (urfave/cli already prefers a flag over its variable), then validation.
func resolveConfig(c *cli.Context) (*config.Config, error) {
	cfg, err := loadConfig(c.String("config"))
	if err != nil {
		return nil, err
	}
	overrides := []struct {
		flag string
		dst  *string
	}{
		{"listen", &cfg.Listen},
		{"admin-listen", &cfg.AdminListen},
		{"data-dir", &cfg.DataDir},
		{"log-level", &cfg.Log.Level},
		{"log-format", &cfg.Log.Format},
	}
	for _, o := range overrides {
		if c.IsSet(o.flag) {
			*o.dst = c.String(o.flag)
		}
	}
	if dir := c.String("tls-self-signed"); dir != "" { // serve only
		if err := useSelfSigned(cfg, dir); err != nil {
			return nil, err
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configuration after flags and environment: %w", err)
	}
	return cfg, nil
}

// tlsSelfSignedFlag is serve's development TLS: a CA and a server
// certificate in DIR, made once and reused.
func tlsSelfSignedFlag() cli.Flag {
	return &cli.StringFlag{Name: "tls-self-signed", EnvVars: []string{"CAIRN_TLS_SELF_SIGNED"}, Usage: "serve TLS with a development CA and certificate kept in `DIR` (made if missing); prints the containerd hosts.toml that trusts it"}
}

// useSelfSigned makes (or reuses) the development certificate in dir for
// the listen address and points tls.cert_file and key_file at it; the
// rest of the tls section (client_ca_file, min_version) stays.
func useSelfSigned(cfg *config.Config, dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("--tls-self-signed: %w", err)
	}
	if err := devca.Ensure(dir, devca.Names(cfg.Listen)); err != nil {
		return fmt.Errorf("--tls-self-signed: %w", err)
	}
	cfg.TLS.CertFile = filepath.Join(dir, devca.ServerCert)
	cfg.TLS.KeyFile = filepath.Join(dir, devca.ServerKey)
	return nil
}

func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Default(), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	cfg, err := config.Load(f)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}
