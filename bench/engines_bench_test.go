package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	ctrd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/opencontainers/image-spec/identity"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/engine/containerd"
	"github.com/runner-dev/runner/internal/engine/docker"
	"github.com/runner-dev/runner/runner"
)

// backend is one engine the side-by-side benchmark runs on, found the way
// the conformance tests find them (RUNNER_TEST_* variables, set by .ci/run).
type backend struct {
	name, host, runtime, engine string
	stateOwner                  string // a socket whose owner must reach the state dir ("" = root's)
}

func backends() []backend {
	bs := []backend{{name: "docker", engine: "docker"}}
	if h := os.Getenv("RUNNER_TEST_ROOTLESS_DOCKER_HOST"); h != "" {
		bs = append(bs, backend{name: "rootless", host: h, engine: "docker", stateOwner: h})
	}
	if rt := os.Getenv("RUNNER_TEST_GVISOR_RUNTIME"); rt != "" {
		bs = append(bs, backend{name: "gvisor", runtime: rt, engine: "docker"})
	}
	if a := os.Getenv("RUNNER_TEST_CONTAINERD_ADDRESS"); a != "" {
		bs = append(bs, backend{name: "containerd", host: a, engine: "containerd"})
	}
	if h := os.Getenv("RUNNER_TEST_PODMAN_HOST"); h != "" {
		bs = append(bs, backend{name: "podman", host: h, engine: "podman", stateOwner: h})
	}
	return bs
}

func (bk backend) connect(ctx context.Context) (engine.Engine, error) {
	if bk.engine == "containerd" {
		return containerd.New(ctx, bk.host)
	}
	return docker.New(ctx, bk.host)
}

// BenchmarkApply10Engines reports, side by side in one run, on every
// backend that is configured: apply-s (runner apply of 10 fresh agents,
// read-back and tmux included) and reapply-s (a no-op re-apply), as
// sub-benchmarks named by backend. A backend that is not configured is
// not run (the run's output lists those that were).
func BenchmarkApply10Engines(b *testing.B) {
	ctx := context.Background()
	tmp := b.TempDir()
	agentBin := buildBins(b, tmp)
	for _, bk := range backends() {
		b.Run(bk.name, func(b *testing.B) {
			eng, err := bk.connect(ctx)
			if err != nil {
				b.Fatal(err)
			}
			defer eng.Close()
			stateDir := stateDirFor(b, bk.stateOwner)
			if err := runner.BuildImage(ctx, eng, runner.ImageOptions{Ref: image, AgentBin: agentBin}); err != nil {
				b.Fatal(err)
			}
			info, err := eng.Info(ctx)
			if err != nil {
				b.Fatal(err)
			}
			block := fmt.Sprintf("engine = %q\n", bk.engine)
			if !info.MemoryLimit || !info.PidsLimit || !info.CPULimit {
				block += ` accept_unenforced = ["memory", "pids", "cpus"]` + "\n"
			}
			pids := 64
			if bk.runtime != "" {
				block += fmt.Sprintf(" runtime = %q\n", bk.runtime)
				pids = config.MinPidsRunsc
			}
			var applyT, reapplyT time.Duration
			for i := 0; i < b.N; i++ {
				a, re := applyAndReapply(b, ctx, eng, tmp, stateDir, block, pids)
				applyT += a
				reapplyT += re
			}
			n := float64(b.N)
			b.ReportMetric(applyT.Seconds()/n, "apply-s")
			b.ReportMetric(reapplyT.Seconds()/n, "reapply-s")
		})
	}
}

// BenchmarkContainerdRemap reports the time to make a container's root
// filesystem on containerd for the default image under a user namespace
// mapping: first-s when the shifted (chowned) snapshot for that mapping
// does not exist yet, cached-s when it does (a new run on a mapping whose
// snapshot was made before). It is the same containerd client call
// runner's Create makes (WithUserNSRemappedSnapshot), on a mapping no run
// uses, removed afterwards.
func BenchmarkContainerdRemap(b *testing.B) {
	addr := os.Getenv("RUNNER_TEST_CONTAINERD_ADDRESS")
	if addr == "" {
		b.Skip("RUNNER_TEST_CONTAINERD_ADDRESS is not set (scripts/containerd.sh)")
	}
	ctx := context.Background()
	tmp := b.TempDir()
	agentBin := buildBins(b, tmp)
	eng, err := containerd.New(ctx, addr)
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	if err := runner.BuildImage(ctx, eng, runner.ImageOptions{Ref: image, AgentBin: agentBin}); err != nil {
		b.Fatal(err)
	}
	cli, err := ctrd.New(strings.TrimPrefix(addr, "unix://"), ctrd.WithDefaultNamespace(containerd.Namespace))
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	img, err := cli.GetImage(ctx, image)
	if err != nil {
		b.Fatal(err)
	}
	diffIDs, err := img.RootFS(ctx)
	if err != nil {
		b.Fatal(err)
	}
	chain := identity.ChainID(diffIDs).String()
	sn := cli.SnapshotService("overlayfs")
	var firstT, cachedT time.Duration
	for i := 0; i < b.N; i++ {
		// Far above any /etc/subuid range runner allocates from.
		base := uint32(3_000_000_000) + uint32((time.Now().UnixNano()/1000)%1000)*65536
		m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: base, Size: 65536}}
		t0 := time.Now()
		var made []string
		for j, d := range []*time.Duration{&firstT, &cachedT} {
			id := fmt.Sprintf("bench-remap-%d-%d-%d", os.Getpid(), i, j)
			start := time.Now()
			_, err := cli.NewContainer(ctx, id, ctrd.WithSnapshotter("overlayfs"), ctrd.WithUserNSRemappedSnapshot(id, img, m, m),
				ctrd.WithNewSpec())
			*d += time.Since(start)
			if err != nil {
				b.Fatal(err)
			}
			made = append(made, id)
		}
		for _, id := range made {
			if c, err := cli.LoadContainer(ctx, id); err == nil {
				c.Delete(ctx, ctrd.WithSnapshotCleanup)
			}
		}
		// The shifted snapshot this iteration made (a child of the
		// image's, committed after t0): remove it so the next iteration's
		// first is a first again.
		sn.Walk(ctx, func(ctx context.Context, si snapshots.Info) error {
			if si.Kind == snapshots.KindCommitted && si.Parent == chain && si.Created.After(t0) {
				sn.Remove(ctx, si.Name)
			}
			return nil
		})
	}
	n := float64(b.N)
	b.ReportMetric(firstT.Seconds()/n, "first-s")
	b.ReportMetric(cachedT.Seconds()/n, "cached-s")
}

// buildBins builds runner and a static runner-agent into dir and returns
// runner-agent's path.
func buildBins(b *testing.B, dir string) string {
	b.Helper()
	root, _ := filepath.Abs("..")
	for name, pkg := range map[string]string{"runner": "./cmd/runner", "runner-agent": "./cmd/runner-agent"} {
		build := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg)
		build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			b.Fatalf("%v\n%s", err, out)
		}
	}
	return filepath.Join(dir, "runner-agent")
}

// stateDirFor is a state directory the engine's daemon can reach: a
// rootless one bind-mounts the relay directory and credentials as its user.
func stateDirFor(b *testing.B, sock string) string {
	b.Helper()
	dir, err := os.MkdirTemp("", "runner-bench-state-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	if sock != "" {
		fi, err := os.Stat(strings.TrimPrefix(sock, "unix://"))
		if err != nil {
			b.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if err := os.Chown(dir, int(st.Uid), int(st.Gid)); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// applyAndReapply applies a fresh run of 10 agents, re-applies it (which
// must change nothing) and destroys it, returning the two apply times.
func applyAndReapply(b *testing.B, ctx context.Context, eng engine.Engine, tmp, stateDir, block string, pids int) (time.Duration, time.Duration) {
	b.Helper()
	run := fmt.Sprintf("bench-%d", time.Now().UnixNano()%1000000)
	var hcl strings.Builder
	fmt.Fprintf(&hcl, "run %q {\n %s}\n", run, block)
	fmt.Fprintf(&hcl, "agent \"a\" {\n count = %d\n image = %q\n command = [\"sleep\", \"3600\"]\n memory = \"64MiB\"\n cpus = 0.5\n pids = %d\n}\n", agents, image, pids)
	path := filepath.Join(tmp, run+".hcl")
	os.WriteFile(path, []byte(hcl.String()), 0o644)
	cfg, diags := config.Load(path, nil)
	if diags.HasErrors() {
		b.Fatal(diags)
	}
	r := &runner.Runner{Engine: eng, StateRoot: stateDir, Program: []string{filepath.Join(tmp, "runner")}}
	defer r.Destroy(ctx, run)
	start := time.Now()
	if _, err := r.Apply(ctx, cfg); err != nil {
		b.Fatal(err)
	}
	applyT := time.Since(start)
	start = time.Now()
	res, err := r.Apply(ctx, cfg)
	if err != nil || res.Plan.Changes() {
		b.Fatalf("re-apply: %v %v", err, res.Plan)
	}
	reapplyT := time.Since(start)
	if _, err := r.Destroy(ctx, run); err != nil {
		b.Fatal(err)
	}
	return applyT, reapplyT
}
