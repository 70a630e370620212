package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/cairn-mirror/cairn/internal/procs"
)

const startTimeout = time.Minute

// server is one of the two mirrors under test.
type server struct {
	name    string // "cairn" or "reference"
	addr    string // 127.0.0.1:PORT of the registry API
	admin   string // cairn's admin listener
	token   string // cairn's admin token
	dataDir string
	proc    *procs.Proc
}

func (s *server) url() string { return "http://" + s.addr }

// env is the upstream, the tap in front of it and the two servers.
type env struct {
	work        string
	registryBin string
	opts        options
	upstream    *procs.Proc
	upAddr      string
	tap         *tap
	cairn       *server
	ref         *server
	client      *http.Client // the harness's own requests: seeding, deletes
}

func buildCairn(ctx context.Context, work string) (string, error) {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	if root == "." || root == "" || strings.TrimSpace(string(gomod)) == os.DevNull {
		return "", errors.New("run from the cairn repository, or give --cairn")
	}
	out := filepath.Join(work, "bin", "cairn")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/cairn")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/cairn: %w\n%s", err, b)
	}
	return out, nil
}

func startEnv(ctx context.Context, work, cairnBin, registryBin string, opts options) (_ *env, err error) {
	if _, err := exec.LookPath(registryBin); err != nil {
		return nil, fmt.Errorf("%s not found (apt-get install docker-registry): %w", registryBin, err)
	}
	e := &env{work: work, registryBin: registryBin, opts: opts, client: &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: 16, DisableCompression: true,
	}}}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	e.upstream, e.upAddr, err = startRegistry(registryBin, filepath.Join(work, "upstream"), "")
	if err != nil {
		return nil, err
	}
	if e.tap, err = startTap("http://" + e.upAddr); err != nil {
		return nil, err
	}
	e.ref = &server{name: nameRef, dataDir: filepath.Join(work, "reference")}
	e.ref.proc, e.ref.addr, err = startRegistry(registryBin, e.ref.dataDir, e.tap.url())
	if err != nil {
		return nil, err
	}
	if e.cairn, err = startCairn(cairnBin, filepath.Join(work, "cairn"), e.tap.url()); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "cairn-bench: upstream %s, tap %s, reference %s, cairn %s (work dir %s)\n",
		e.upAddr, e.tap.addr, e.ref.addr, e.cairn.addr, work)
	return e, nil
}

func (e *env) close() {
	for _, s := range []*server{e.cairn, e.ref} {
		if s != nil && s.proc != nil {
			_ = s.proc.Stop()
		}
	}
	if e.tap != nil {
		e.tap.close()
	}
	if e.upstream != nil {
		_ = e.upstream.Stop()
	}
}

// servers is both, cairn first on even runs and the reference first on
// odd ones.
func (e *env) servers(run int) []*server {
	if run%2 == 1 {
		return []*server{e.ref, e.cairn}
	}
	return []*server{e.cairn, e.ref}
}

// startRegistry runs docker-registry with its storage in dir; with
// remoteURL it is a pull-through proxy of that registry.
func startRegistry(bin, dir, remoteURL string) (*procs.Proc, string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	type started struct {
		p    *procs.Proc
		addr string
	}
	s, err := procs.WithPortRetry(func() (started, error) {
		addr, err := procs.FreeAddr()
		if err != nil {
			return started{}, err
		}
		yml := fmt.Sprintf("version: 0.1\n"+
			"log: {level: info, accesslog: {disabled: false}}\n"+
			"storage: {filesystem: {rootdirectory: %s}, delete: {enabled: true}}\n"+
			"http: {addr: %q, secret: cairn-bench}\n", filepath.Join(dir, "data"), addr)
		name := "upstream"
		if remoteURL != "" {
			yml += fmt.Sprintf("proxy: {remoteurl: %q}\n", remoteURL)
			name = "reference"
		}
		cfg := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(cfg, []byte(yml), 0o644); err != nil {
			return started{}, err
		}
		p, err := procs.StartQuiet(name+" (docker-registry)", filepath.Join(dir, "registry.log"), bin, "serve", cfg)
		if err != nil {
			return started{}, err
		}
		if err := p.WaitReady(startTimeout, func() error { return httpOK("http://" + addr + "/v2/") }); err != nil {
			_ = p.Stop()
			return started{}, err
		}
		return started{p, addr}, nil
	})
	return s.p, s.addr, err
}

// startCairn runs cairn serve mirroring docker.io from upstreamURL.
func startCairn(bin, dir, upstreamURL string) (*server, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	s := &server{name: nameCairn, dataDir: filepath.Join(dir, "data"), token: "cairn-bench-admin"}
	tokenFile := filepath.Join(dir, "admin-token")
	if err := os.WriteFile(tokenFile, []byte(s.token+"\n"), 0o600); err != nil {
		return nil, err
	}
	return procs.WithPortRetry(func() (*server, error) {
		var err error
		if s.addr, err = procs.FreeAddr(); err != nil {
			return nil, err
		}
		if s.admin, err = procs.FreeAddr(); err != nil {
			return nil, err
		}
		cfg := fmt.Sprintf(`version: 1
listen: %q
admin_listen: %q
data_dir: %q
log: {level: info, format: json}
admin: {token_file: %q}
cache: {tag_ttl: 5m, serve_stale: true, fill_idle_timeout: 2m}
upstreams:
  - name: docker.io
    url: %s
    default: true
`, s.addr, s.admin, s.dataDir, tokenFile, upstreamURL)
		path := filepath.Join(dir, "cairn.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			return nil, err
		}
		p, err := procs.StartQuiet("cairn", filepath.Join(dir, "cairn.log"), bin, "serve", "-c", path)
		if err != nil {
			return nil, err
		}
		if err := p.WaitReady(startTimeout, func() error { return httpOK("http://" + s.admin + "/readyz") }); err != nil {
			_ = p.Stop()
			return nil, err
		}
		s.proc = p
		return s, nil
	})
}

func httpOK(url string) error {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// drop removes a blob everywhere once its cold scenario is over, to keep
// the disk from filling over a run: from the upstream and the tap's
// records, from cairn through its admin API, and from the reference's
// storage directory (the proxy has no API for it).
func (e *env) drop(ctx context.Context, repo, digest string) error {
	e.tap.forget(digest)
	var errs []error
	del := func(url, token string) {
		req, err := http.NewRequestWithContext(ctx, http.MethodDelete, url, nil)
		if err != nil {
			errs = append(errs, err)
			return
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := e.client.Do(req)
		if err != nil {
			errs = append(errs, err)
			return
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusNotFound {
			errs = append(errs, fmt.Errorf("DELETE %s: %s", url, resp.Status))
		}
	}
	del(fmt.Sprintf("http://%s/v2/%s/blobs/%s", e.upAddr, repo, digest), "")
	del(fmt.Sprintf("http://%s/api/v1/cache/blobs/%s", e.cairn.admin, digest), e.cairn.token)
	errs = append(errs, os.RemoveAll(filepath.Dir(e.ref.blobPath(digest))))
	return errors.Join(errs...)
}

// blobPath is where server s keeps digest once stored: a file renamed
// into place whole, in cairn's data dir or in distribution's storage.
func (s *server) blobPath(digest string) string {
	hex := strings.TrimPrefix(digest, "sha256:")
	if s.name == nameRef {
		return filepath.Join(s.dataDir, "data", "docker", "registry", "v2", "blobs", "sha256", hex[:2], hex, "data")
	}
	return filepath.Join(s.dataDir, "blobs", "sha256", hex[:2], hex)
}
