package main

import (
	"bytes"
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
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cairn-mirror/cairn/admin"
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
			{Name: "stats", Usage: "print disk usage, blob count and capacity; hit ratio and bytes saved since start (running node)", Flags: flags, Action: cacheStatsCommand},
			{Name: "verify", Usage: "re-hash every blob, quarantining corrupt ones (needs the admin token)", Flags: flags, Action: cacheVerifyCommand},
			{Name: "rm", Usage: "remove one blob, pinned or not (needs the admin token)", ArgsUsage: "DIGEST", Flags: flags, Action: cacheRmCommand},
			{Name: "ls", Usage: "list cached tags with the stored size of each image", Flags: flags, Action: cacheLsCommand},
			{Name: "du", Usage: "print disk usage in total and per namespace", Flags: flags, Action: cacheDuCommand},
			{Name: "pin", Usage: "keep an image from eviction and pruning (running node only, needs the admin token)",
				ArgsUsage: "NAMESPACE/REPO:TAG|NAMESPACE/REPO@DIGEST", Flags: flags, Action: cachePinCommand(true)},
			{Name: "unpin", Usage: "drop the pin of `cairn cache pin` (running node only, needs the admin token)",
				ArgsUsage: "NAMESPACE/REPO:TAG|NAMESPACE/REPO@DIGEST", Flags: flags, Action: cachePinCommand(false)},
			{Name: "prune", Usage: "remove unpinned blobs not read for a while (needs the admin token)",
				Flags: append([]cli.Flag{&cli.StringFlag{Name: "older-than", Required: true,
					Usage: "age of the last read, a Go duration (720h) or days (30d)"}}, flags...),
				Action: cachePruneCommand},
		},
	}
}

func cacheStatsCommand(c *cli.Context) error {
	var st admin.CacheStats
	err := withNodeOrStore(c, func(a *adminClient) error {
		return a.do(c.Context, http.MethodGet, admin.PathStats, &st)
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
		if s := st.SinceStart; s != nil {
			fmt.Fprintf(tw, "\nSINCE START\tHIT RATIO\tSERVED\tFETCHED\tSAVED\n\t%.1f%% of %d\t%s\t%s\t%s\n",
				100*s.HitRatio, s.Hits+s.Misses, humanBytes(s.ServedBytes), humanBytes(s.FetchedBytes), humanBytes(s.SavedBytes))
		}
	})
}

func cacheVerifyCommand(c *cli.Context) error {
	var res admin.VerifyResult
	err := withNodeOrStore(c, func(a *adminClient) error {
		return a.do(c.Context, http.MethodPost, admin.PathVerify, &res)
	}, func(s *storage.Store) error {
		rep, err := s.Verify(c.Context)
		res = admin.NewVerifyResult(rep)
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
		return a.do(c.Context, http.MethodDelete, admin.PathBlobs+url.PathEscape(d), nil)
	}, func(s *storage.Store) error {
		return admin.RemoveBlob(s, d)
	})
	if err != nil {
		return err
	}
	return render(c, admin.RemoveResult{Removed: d}, func(tw *tabwriter.Writer) {
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

// do sends one call without a body; see send.
func (a *adminClient) do(ctx context.Context, method, path string, out any) error {
	return a.send(ctx, method, path, nil, out)
}

// send sends one call with in as its JSON body (nil: none) and decodes
// the JSON answer into out (nil: discard). A non-2xx answer becomes an
// error carrying the API's message.
func (a *adminClient) send(ctx context.Context, method, path string, in, out any) error {
	var reqBody io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("admin API: %w", err)
		}
		reqBody = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, reqBody)
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
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
		var e admin.ErrorBody
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

func cacheLsCommand(c *cli.Context) error {
	rows, err := fetchTags(c)
	if err != nil {
		return err
	}
	return render(c, rows, func(tw *tabwriter.Writer) {
		fmt.Fprintln(tw, "REPOSITORY\tTAG\tDIGEST\tMEDIA TYPE\tLAST PULLED\tSIZE")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%s\t%s\t%s\n", r.Namespace, r.Repo, r.Tag, shortDigest(r.Digest),
				r.MediaType, r.CheckedAt.Local().Format(time.DateTime), humanBytes(r.Bytes))
		}
	})
}

// fetchTags gets the tag rows from the node, or from the stopped node's
// data directory.
func fetchTags(c *cli.Context) ([]admin.TagRow, error) {
	var rows []admin.TagRow
	err := withNodeOrStore(c, func(a *adminClient) error {
		return a.do(c.Context, http.MethodGet, admin.PathRepos, &rows)
	}, func(s *storage.Store) error {
		var err error
		rows, err = admin.ListTags(s)
		return err
	})
	return rows, err
}

// shortDigest is "sha256:" and the first 12 hex digits.
func shortDigest(d string) string {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) <= 12 {
		return d
	}
	return alg + ":" + hex[:12]
}

// cachePinCommand is `cache pin` (pin true) or `cache unpin`. Pins are
// set through the node's cache, which may fetch the image: no offline mode.
func cachePinCommand(pin bool) cli.ActionFunc {
	name, path := "unpin", admin.PathUnpin
	if pin {
		name, path = "pin", admin.PathPin
	}
	return func(c *cli.Context) error {
		if c.NArg() != 1 {
			return fmt.Errorf("cache %s: want exactly one image reference, got %d arguments", name, c.NArg())
		}
		a, err := newAdminClient(c.String("admin"), c.String("token-file"))
		if err != nil {
			return err
		}
		var res admin.PinResult
		err = a.send(c.Context, http.MethodPost, path, admin.RefRequest{Ref: c.Args().First()}, &res)
		if errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("cache %s: pinning needs the running node (--data-dir is not enough): %w", name, err)
		}
		if err != nil {
			return err
		}
		return render(c, res, func(tw *tabwriter.Writer) {
			fmt.Fprintf(tw, "%sned\t%s\t(reason %q)\n", name, res.Ref, res.Reason)
		})
	}
}

func cachePruneCommand(c *cli.Context) error {
	raw := c.String("older-than")
	age, err := admin.ParseAge(raw)
	if err != nil {
		return fmt.Errorf("--older-than: %w", err)
	}
	var res admin.PruneResult
	err = withNodeOrStore(c, func(a *adminClient) error {
		return a.send(c.Context, http.MethodPost, admin.PathPrune, admin.PruneRequest{OlderThan: raw}, &res)
	}, func(s *storage.Store) error {
		res, err = admin.Prune(s, age, nil)
		return err
	})
	if err != nil {
		return err
	}
	return render(c, res, func(tw *tabwriter.Writer) {
		fmt.Fprintf(tw, "REMOVED\tBYTES\n%d\t%s\n", len(res.Removed), humanBytes(res.Bytes))
	})
}

func cacheDuCommand(c *cli.Context) error {
	var rep admin.DuReport
	err := withNodeOrStore(c, func(a *adminClient) error {
		var rows []admin.TagRow
		err := errors.Join(a.do(c.Context, http.MethodGet, admin.PathStats, &rep.CacheStats),
			a.do(c.Context, http.MethodGet, admin.PathRepos, &rows))
		rep.Namespaces = admin.ByNamespace(rows)
		return err
	}, func(s *storage.Store) error {
		rep.UsedBytes, rep.Blobs = s.Usage()
		rows, err := admin.ListTags(s)
		rep.Namespaces = admin.ByNamespace(rows)
		return err
	})
	if err != nil {
		return err
	}
	return render(c, rep, func(tw *tabwriter.Writer) { printDu(tw, rep) })
}

func printDu(tw *tabwriter.Writer, rep admin.DuReport) {
	capacity := "unknown (offline)"
	switch {
	case rep.CapacityBytes == nil:
	case *rep.CapacityBytes == 0:
		capacity = "unlimited"
	default:
		capacity = humanBytes(*rep.CapacityBytes)
	}
	fmt.Fprintf(tw, "TOTAL\tBLOBS\tCAPACITY\n%s\t%d\t%s\n\n", humanBytes(rep.UsedBytes), rep.Blobs, capacity)
	fmt.Fprintln(tw, "# per namespace: stored images of its tags; a blob shared by several tags or namespaces is counted in each")
	fmt.Fprintln(tw, "NAMESPACE\tTAGS\tBYTES")
	for _, n := range rep.Namespaces {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", n.Namespace, n.Tags, humanBytes(n.Bytes))
	}
}
