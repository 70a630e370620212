package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newApp(os.Stdout, os.Stderr).RunContext(ctx, os.Args)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cairn:", err)
		os.Exit(1)
	}
}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:           "cairn",
		Usage:          "a pull-through caching proxy and mirror for OCI container registries",
		Version:        version,
		Writer:         stdout,
		ErrWriter:      stderr,
		HideVersion:    true,
		ExitErrHandler: func(*cli.Context, error) {}, // main prints and exits
		Commands: []*cli.Command{
			{
				Name:   "serve",
				Usage:  "serve the OCI Distribution API and the admin endpoints",
				Flags:  append(configFlags(), tlsSelfSignedFlag()),
				Action: serveCommand,
			},
			{
				Name:   "check-config",
				Usage:  "validate the configuration and print the effective config (secrets redacted)",
				Flags:  configFlags(),
				Action: checkConfigCommand,
			},
			cacheCommand(),
			{
				Name:  "version",
				Usage: "print the version",
				Action: func(c *cli.Context) error {
					_, err := fmt.Fprintf(c.App.Writer, "cairn %s (commit %s)\n", version, commit)
					return err
				},
			},
		},
	}
}

func checkConfigCommand(c *cli.Context) error {
	cfg, err := resolveConfig(c)
	if err != nil {
		return err
	}
	out, err := cfg.Redacted()
	if err != nil {
		return err
	}
	_, err = c.App.Writer.Write(out)
	return err
}
