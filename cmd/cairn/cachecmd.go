package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/cairn-mirror/cairn/storage"
)

// defaultAdminURL is where `cairn serve` puts the admin API by default.
const defaultAdminURL = "http://127.0.0.1:9090"

// maxAdminBody caps what the CLI reads of an admin answer.
const maxAdminBody = 4 << 20

// cacheCommand is `cairn cache`: it asks the running node's admin API, or,
// when that refuses the connection and --data-dir is given, opens the data
// directory itself (possible only while no node holds it).
func cacheCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "admin", Value: defaultAdminURL, EnvVars: []string{"CAIRN_ADMIN_URL"}, Usage: "base URL of the running node's admin API"},
		&cli.StringFlag{Name: "token-file", EnvVars: []string{"CAIRN_ADMIN_TOKEN_FILE"}, Usage: "file holding the admin bearer token (admin.token_file of the node)"},
		&cli.StringFlag{Name: "data-dir", EnvVars: []string{"CAIRN_DATA_DIR"}, Usage: "open this data directory directly when the admin API is unreachable (no node may be running on it)"},
		&cli.BoolFlag{Name: "json", Usage: "print JSON instead of a table"},
	}
	return &cli.Command{
		Name:  "cache",
		Usage: "inspect and maintain the cache of a node",
		Subcommands: []*cli.Command{
			{Name: "stats", Usage: "print disk usage, blob count and capacity", Flags: flags, Action: cacheStatsCommand},
			{Name: "verify", Usage: "re-hash every blob, quarantining corrupt ones (needs the admin token)", Flags: flags, Action: cacheVerifyCommand},
			{Name: "rm", Usage: "remove one blob, pinned or not (needs the admin token)", ArgsUsage: "DIGEST", Flags: flags, Action: cacheRmCommand},
		},
	}
}

func cacheStatsCommand(c *cli.Context) error {
	var st cacheStats
	err := withNodeOrStore(c, func(a *adminClient) error {
		return a.do(c.Context, http.MethodGet, "/api/v1/cache/stats", &st)
	}, func(s *storage.Store) error {
		st.UsedBytes, st.Blobs = s.Usage() // no config offline: capacity unknown
		return nil
	})
	if err != nil {
		return err
	}
	return render(c, st, func(tw *tabwriter.Writer) {
		capacity := "unknown (offline)"
		switch {
		case st.CapacityBytes == nil:
		case *st.CapacityBytes == 0:
			capacity = "unlimited"
		default:
			capacity = humanBytes(*st.CapacityBytes)
		}
		fmt.Fprintf(tw, "USED\tBLOBS\tCAPACITY\n%s\t%d\t%s\n", humanBytes(st.UsedBytes), st.Blobs, capacity)
	})
}

func cacheVerifyCommand(c *cli.Context) error {
	var res verifyResult
	err := withNodeOrStore(c, func(a *adminClient) error {
		return a.do(c.Context, http.MethodPost, "/api/v1/cache/verify", &res)
	}, func(s *storage.Store) error {
		rep, err := s.Verify(c.Context)
		res = newVerifyResult(rep)
		return err
	})
	if err != nil {
		return err
	}
	return render(c, res, func(tw *tabwriter.Writer) {
		fmt.Fprintf(tw, "CHECKED\tBYTES\tQUARANTINED\n%d\t%s\t%d\n", res.Checked, humanBytes(res.Bytes), len(res.Quarantined))
		for _, d := range res.Quarantined {
			fmt.Fprintf(tw, "quarantined\t%s\t\n", d)
		}
	})
}

func cacheRmCommand(c *cli.Context) error {
	if c.NArg() != 1 {
		return fmt.Errorf("cache rm: want exactly one DIGEST, got %d arguments", c.NArg())
	}
	d := c.Args().First()
	err := withNodeOrStore(c, func(a *adminClient) error {
		return a.do(c.Context, http.MethodDelete, "/api/v1/cache/blobs/"+url.PathEscape(d), nil)
	}, func(s *storage.Store) error {
		return removeBlob(s, d)
	})
	if err != nil {
		return err
	}
	return render(c, removeResult{Removed: d}, func(tw *tabwriter.Writer) {
		fmt.Fprintf(tw, "removed\t%s\n", d)
	})
}

// withNodeOrStore runs online against the admin API; if that refuses the
// connection and --data-dir is set, it runs offline on the opened store.
func withNodeOrStore(c *cli.Context, online func(*adminClient) error, offline func(*storage.Store) error) error {
	a, err := newAdminClient(c.String("admin"), c.String("token-file"))
	if err != nil {
		return err
	}
	err = online(a)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return err
	}
	dir := c.String("data-dir")
	if dir == "" {
		return fmt.Errorf("%w (is the node running? give --data-dir to work on a stopped node's data directory)", err)
	}
	return runOffline(dir, offline)
}

// runOffline opens dir as a storage.Store. It refuses a directory that
// holds no metadata (storage.Open would create a fresh one) and explains
// the usual reason Open fails: a running node holds the lock on meta/.
func runOffline(dir string, fn func(*storage.Store) error) error {
	if _, err := os.Stat(filepath.Join(dir, "meta")); err != nil {
		return fmt.Errorf("admin API unreachable, and %s is not a cairn data directory: %w", dir, err)
	}
	s, err := storage.Open(dir)
	if err != nil {
		return fmt.Errorf("admin API unreachable, and opening %s failed (a node running on it holds its "+
			"directory lock: reach that node with --admin instead): %w", dir, err)
	}
	return errors.Join(fn(s), s.Close())
}

// adminClient calls a node's admin API.
type adminClient struct {
	base  string
	token string // "" sends no Authorization header
}

func newAdminClient(base, tokenFile string) (*adminClient, error) {
	a := &adminClient{base: strings.TrimRight(base, "/")}
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		a.token = strings.TrimSpace(string(b))
	}
	return a, nil
}

// do sends one call and decodes its JSON answer into out (nil: discard).
// A non-2xx answer becomes an error carrying the API's message.
func (a *adminClient) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, nil)
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("admin API at %s: %w", a.base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAdminBody))
	if err != nil {
		return fmt.Errorf("admin API %s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(body))
		}
		return fmt.Errorf("admin API %s %s: %s: %s", method, path, resp.Status, e.Error)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("admin API %s %s: %w", method, path, err)
	}
	return nil
}

// render prints v as indented JSON with --json, else the table table writes.
func render(c *cli.Context, v any, table func(*tabwriter.Writer)) error {
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// humanBytes formats n in binary units with one decimal ("1.5 MiB").
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
