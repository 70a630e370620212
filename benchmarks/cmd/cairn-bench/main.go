// Command cairn-bench runs cairn side by side with distribution's proxy mode
// (the reference), both in front of one docker-registry upstream on
// loopback, and writes the figures as Markdown and JSON.
//
//	go run ./benchmarks/cmd/cairn-bench            # the full run (make bench)
//	go run ./benchmarks/cmd/cairn-bench --smoke    # small blobs, one round
//
// Every scenario runs against both servers, alternating which goes first
// from one run to the next, so that machine drift hits both alike. Each
// figure is the median of the runs, with its spread.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
)

func main() {
	app := &cli.App{
		Name:  "cairn-bench",
		Usage: "benchmark cairn against distribution's proxy mode on loopback",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "smoke", Usage: "small blobs, one round, short loops: checks the harness, not the speed"},
			&cli.IntFlag{Name: "runs", Value: 3, Usage: "runs of each scenario per server (the smoke pass: 1)"},
			&cli.StringFlag{Name: "scenarios", Value: strings.Join(allScenarios, ","), Usage: "comma-separated subset of " + strings.Join(allScenarios, ",")},
			&cli.StringFlag{Name: "out", Value: "benchmarks/results", Usage: "directory for latest.md and latest.json (relative to the repository root when run from it)"},
			&cli.StringFlag{Name: "work", Usage: "scratch directory (default: a new one under the system temp dir, removed at the end)"},
			&cli.StringFlag{Name: "cairn", Usage: "a cairn binary to run (default: go build ./cmd/cairn)"},
			&cli.StringFlag{Name: "registry", Value: "docker-registry", Usage: "distribution's binary, for the upstream and the reference proxy"},
			&cli.BoolFlag{Name: "check", Usage: "exit 1 when a figure misses its target (exact targets always count)"},
			&cli.DurationFlag{Name: "timeout", Value: 30 * time.Minute, Usage: "bound on the whole run"},
		},
		Action: run,
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "cairn-bench:", err)
		os.Exit(1)
	}
}

func run(c *cli.Context) error {
	opts := defaultOptions()
	if c.Bool("smoke") {
		opts = smokeOptions()
	}
	if c.IsSet("runs") || !c.Bool("smoke") {
		opts.runs = c.Int("runs")
	}
	if opts.runs < 1 {
		return errors.New("--runs: at least 1")
	}
	scen, err := parseScenarios(c.String("scenarios"))
	if err != nil {
		return err
	}
	opts.scenarios = scen

	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	work := c.String("work")
	if work == "" {
		if work, err = os.MkdirTemp("", "cairn-bench"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	work, err = filepath.Abs(work)
	if err != nil {
		return err
	}

	bin := c.String("cairn")
	if bin == "" {
		if bin, err = buildCairn(ctx, work); err != nil {
			return err
		}
	}
	e, err := startEnv(ctx, work, bin, c.String("registry"), opts)
	if err != nil {
		return err
	}
	defer e.close()

	rep, runErr := e.runAll(ctx)
	if rep == nil {
		return runErr
	}
	md, js := rep.markdown(), rep.json()
	fmt.Print(md)
	if out := c.String("out"); out != "" && !opts.smoke {
		if err := writeResults(out, md, js); err != nil {
			return errors.Join(runErr, err)
		}
		fmt.Fprintf(os.Stderr, "cairn-bench: wrote %s/latest.md and latest.json\n", out)
	}
	if runErr != nil {
		return runErr
	}
	if misses := rep.misses(c.Bool("check")); len(misses) > 0 {
		return fmt.Errorf("%d figure(s) missed their targets:\n  %s", len(misses), strings.Join(misses, "\n  "))
	}
	return nil
}

func writeResults(dir, md string, js []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "latest.md"), []byte(md), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "latest.json"), js, 0o644)
}
