package bench

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/engine/docker"
	"github.com/runner-dev/runner/internal/state"
	"github.com/runner-dev/runner/internal/workspace"
	"github.com/runner-dev/runner/runner"
)

const (
	wsAgents   = 4
	wsFiles    = 10000
	wsFileSize = 10 << 10 // 10 000 files of 10 KiB: ~100 MiB, incompressible
)

// genRepo writes a repository of wsFiles files of random bytes in 100
// directories, committed on main.
func genRepo(b *testing.B, dir string) {
	b.Helper()
	rng := rand.New(rand.NewSource(1))
	buf := make([]byte, wsFileSize)
	for i := range wsFiles {
		d := filepath.Join(dir, fmt.Sprintf("d%02d", i%100))
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
		rng.Read(buf)
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%05d.bin", i)), buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"commit", "-qm", "generated"}} {
		cmd := exec.Command("git", append([]string{"-c", "user.name=bench", "-c", "user.email=bench@example.com"}, args...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
}

// BenchmarkApplyWorkspace4 reports, per iteration, on a generated
// repository of ~100 MiB in 10 000 files: apply-ws-s (apply of 4 agents
// with a workspace each: 4 clones and 4 containers), apply-plain-s (the
// same 4 agents without one), fetch-s (runner fetch of one small commit
// from one agent: only the new objects travel), and disk-MiB/agent (the
// blocks one clone takes: objects copied, never hard-linked, plus its
// checked-out tree).
func BenchmarkApplyWorkspace4(b *testing.B) {
	ctx := context.Background()
	root, _ := filepath.Abs("..")
	tmp := b.TempDir()
	os.Chmod(tmp, 0o755)
	agentBin := filepath.Join(tmp, "runner-agent")
	for name, pkg := range map[string]string{"runner": "./cmd/runner", "runner-agent": "./cmd/runner-agent"} {
		build := exec.Command("go", "build", "-o", filepath.Join(tmp, name), pkg)
		build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			b.Fatalf("%v\n%s", err, out)
		}
	}
	repo := filepath.Join(tmp, "repo")
	if err := os.Mkdir(repo, 0o755); err != nil {
		b.Fatal(err)
	}
	genRepo(b, repo)
	eng, err := docker.New(ctx, "")
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	if err := runner.BuildImage(ctx, eng, runner.ImageOptions{Ref: image, AgentBin: agentBin}); err != nil {
		b.Fatal(err)
	}
	info, err := eng.Info(ctx)
	if err != nil {
		b.Fatal(err)
	}
	accept := ""
	if !info.MemoryLimit || !info.PidsLimit || !info.CPULimit {
		accept = `accept_unenforced = ["memory", "pids", "cpus"]`
	}
	stateRoot := filepath.Join(tmp, "state")
	b.Setenv("RUNNER_STATE_DIR", stateRoot)
	load := func(run string, ws bool) *config.Config {
		var hcl strings.Builder
		fmt.Fprintf(&hcl, "run %q {\n %s\n}\n", run, accept)
		fmt.Fprintf(&hcl, "agent \"a\" {\n count = %d\n image = %q\n command = [\"sleep\", \"3600\"]\n", wsAgents, image)
		if ws {
			fmt.Fprintf(&hcl, " workspace {\n  repo = %q\n }\n", repo)
		}
		hcl.WriteString("}\n")
		path := filepath.Join(tmp, run+".hcl")
		os.WriteFile(path, []byte(hcl.String()), 0o644)
		cfg, diags := config.Load(path, nil)
		if diags.HasErrors() {
			b.Fatal(diags)
		}
		return cfg
	}
	r := &runner.Runner{Engine: eng, StateRoot: stateRoot, Program: []string{filepath.Join(tmp, "runner")}}

	var wsT, plainT, fetchT time.Duration
	var disk int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		run := fmt.Sprintf("wsbench-%d-%d", i, time.Now().UnixNano()%100000)
		cfg := load(run, true)
		start := time.Now()
		res, err := r.Apply(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		wsT += time.Since(start)
		st := state.Run{Root: stateRoot, Name: run}
		n, err := workspace.Size(workspace.CloneDir(st, "a-1"))
		if err != nil {
			b.Fatal(err)
		}
		disk += n
		if x, err := eng.Exec(ctx, res.IDs["a-1"], "", []string{"sh", "-c", "cd /workspace && echo change > new.txt && git add new.txt && git commit -qm change"}); err != nil || x.ExitCode != 0 {
			b.Fatalf("commit in a-1: %v %+v", err, x)
		}
		start = time.Now()
		if _, err := r.Fetch(ctx, cfg, []string{"a-1"}); err != nil {
			b.Fatal(err)
		}
		fetchT += time.Since(start)
		if _, err := r.DestroyWith(ctx, run, runner.DestroyOptions{DiscardWork: true}); err != nil {
			b.Fatal(err)
		}

		run = fmt.Sprintf("wsplain-%d-%d", i, time.Now().UnixNano()%100000)
		cfg = load(run, false)
		start = time.Now()
		if _, err := r.Apply(ctx, cfg); err != nil {
			b.Fatal(err)
		}
		plainT += time.Since(start)
		if _, err := r.Destroy(ctx, run); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(wsT.Seconds()/float64(b.N), "apply-ws-s")
	b.ReportMetric(plainT.Seconds()/float64(b.N), "apply-plain-s")
	b.ReportMetric(fetchT.Seconds()/float64(b.N), "fetch-s")
	b.ReportMetric(float64(disk)/float64(b.N)/(1<<20), "disk-MiB/agent")
}
