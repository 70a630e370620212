package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cairn-mirror/cairn/internal/procs"
)

const ctrTimeout = 5 * time.Minute

// containerd is a private containerd daemon for the image scenario.
type containerd struct {
	*procs.Containerd
}

func startContainerd() (*containerd, error) {
	for _, tool := range []string{"containerd", "ctr"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s not found (apt-get install containerd): %w", tool, err)
		}
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("the containerd scenario needs root (or leave it out with --scenarios)")
	}
	// Short: the socket path must fit in about 108 bytes.
	dir, err := os.MkdirTemp("/tmp", "cbctd")
	if err != nil {
		return nil, err
	}
	d, err := procs.StartContainerd(dir, "", startTimeout)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return &containerd{d}, nil
}

func (c *containerd) close() {
	_ = c.Proc.Stop()
	_ = os.RemoveAll(c.Dir)
}

func (c *containerd) ctr(ctx context.Context, args ...string) (string, error) {
	argv := append([]string{"ctr", "--address", c.Sock, "--namespace", "bench"}, args...)
	return procs.Run(ctx, ctrTimeout, argv...)
}

// hostsDir writes a hosts.toml that sends docker.io to mirror only (a
// closed port as the server: no silent fallback) and returns its dir.
func hostsDir(work, mirror string) (string, error) {
	dir := filepath.Join(work, "hosts-"+strings.ReplaceAll(mirror, ":", "_"))
	if err := os.MkdirAll(filepath.Join(dir, "docker.io"), 0o755); err != nil {
		return "", err
	}
	toml := fmt.Sprintf("server = \"http://127.0.0.1:9\"\n\n[host.\"http://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", mirror)
	return dir, os.WriteFile(filepath.Join(dir, "docker.io", "hosts.toml"), []byte(toml), 0o644)
}

// pull pulls and unpacks ref and returns how long it took.
func (c *containerd) pull(ctx context.Context, hosts, ref string) (time.Duration, error) {
	start := time.Now()
	if _, err := c.ctr(ctx, "images", "pull", "--hosts-dir", hosts, "--snapshotter", c.Snapshotter, ref); err != nil {
		return 0, err
	}
	d := time.Since(start)
	out, err := c.ctr(ctx, "images", "check", "--snapshotter", c.Snapshotter, "name=="+ref)
	if err != nil {
		return 0, err
	}
	if !strings.Contains(out, "complete") || !strings.Contains(out, "true") {
		return 0, fmt.Errorf("after pulling %s, ctr images check does not show it complete and unpacked:\n%s", ref, out)
	}
	return d, nil
}

// clear removes every image and content blob, so the next pull asks the
// mirror for everything again.
func (c *containerd) clear(ctx context.Context) error {
	images, err := c.ctr(ctx, "images", "ls", "-q")
	if err != nil {
		return err
	}
	if refs := strings.Fields(images); len(refs) > 0 {
		if _, err := c.ctr(ctx, append([]string{"images", "rm", "--sync"}, refs...)...); err != nil {
			return err
		}
	}
	content, err := c.ctr(ctx, "content", "ls", "-q")
	if err != nil {
		return err
	}
	if digests := strings.Fields(content); len(digests) > 0 {
		if _, err := c.ctr(ctx, append([]string{"content", "rm"}, digests...)...); err != nil {
			return err
		}
	}
	return nil
}

// seedIndex pushes a fresh two-platform image (the host's architecture
// and one other) to repo:v1 upstream and returns its reference as
// containerd names it.
func (e *env) seedIndex(ctx context.Context, repo string) (string, error) {
	idx := v1.ImageIndex(empty.Index)
	for _, arch := range []string{runtime.GOARCH, otherArch()} {
		img, err := random.Image(e.opts.imageLayer, int64(e.opts.imageLayers))
		if err != nil {
			return "", err
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return "", err
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", arch
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			return "", err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	ref, err := name.ParseReference(e.upAddr+"/"+repo+":v1", name.Insecure)
	if err != nil {
		return "", err
	}
	if err := remote.WriteIndex(ref, idx, remote.WithContext(ctx)); err != nil {
		return "", err
	}
	return "docker.io/" + repo + ":v1", nil
}

func otherArch() string {
	if runtime.GOARCH == "arm64" {
		return "amd64"
	}
	return "arm64"
}

// Scenario 5: a whole multi-arch image pulled by containerd, cold (fresh
// content for each server and run) and warm (containerd emptied, the
// mirror holding it).
func (e *env) containerdPulls(ctx context.Context, rep *report, _ map[int64]image) error {
	ctd, err := startContainerd()
	if err != nil {
		return err
	}
	defer ctd.close()
	hosts := map[*server]string{}
	for _, s := range []*server{e.cairn, e.ref} {
		if hosts[s], err = hostsDir(e.work, s.addr); err != nil {
			return err
		}
	}
	const sc = "5 containerd"
	cse := fmt.Sprintf("2-platform index, %d x %s layers", e.opts.imageLayers, sizeName(e.opts.imageLayer))
	for run := range e.opts.runs {
		for _, s := range e.servers(run) {
			ref, err := e.seedIndex(ctx, fmt.Sprintf("library/multi-%d-%s", run, s.name))
			if err != nil {
				return fmt.Errorf("seeding the image: %w", err)
			}
			m, err := startMeasure(s)
			if err != nil {
				return err
			}
			gets0 := e.tap.count("GET blob")
			cold, err := ctd.pull(ctx, hosts[s], ref)
			if err != nil {
				return fmt.Errorf("%s: cold pull: %w", s.name, err)
			}
			gets := e.tap.count("GET blob") - gets0
			if err := ctd.clear(ctx); err != nil {
				return err
			}
			warm, err := ctd.pull(ctx, hosts[s], ref)
			if err != nil {
				return fmt.Errorf("%s: warm pull: %w", s.name, err)
			}
			if err := ctd.clear(ctx); err != nil {
				return err
			}
			rep.add(sc, cse, "cold pull", "s", false, target{}, s.name, cold.Seconds())
			rep.add(sc, cse, "warm pull", "s", false, target{}, s.name, warm.Seconds())
			// The host's image: config and layers, one GET each.
			rep.add(sc, cse, "upstream blob GETs, cold pull", "count", false, target{kind: cairnEq, value: float64(1 + e.opts.imageLayers), exact: true}, s.name, float64(gets))
			if err := addPeak(rep, sc, s, &m); err != nil {
				return err
			}
		}
	}
	return nil
}
