// Package bench measures apply against plain `docker run -d` side by side,
// on the real engine: `make bench` (or go test -bench . ./bench/).
package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/engine/docker"
	"github.com/runner-dev/runner/policies"
	"github.com/runner-dev/runner/runner"
)

const (
	agents = 10
	image  = "localhost/runner-agent:bench"
)

// BenchmarkApply10 reports, per iteration and in one run on one engine:
// apply-s (runner apply of 10 fresh agents, including the read-back check and
// waiting for tmux), reapply-s (a no-op re-apply), and docker-run-s (10
// sequential `docker run -d` with the same hardening flags, which returns as
// soon as each container is started).
func BenchmarkApply10(b *testing.B) {
	ctx := context.Background()
	tmp := b.TempDir()
	agentBin := buildBins(b, tmp)
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
	seccompFile := filepath.Join(tmp, "seccomp.json")
	os.WriteFile(seccompFile, policies.Seccomp, 0o644)

	var applyT, reapplyT, dockerT time.Duration
	for i := 0; i < b.N; i++ {
		run := fmt.Sprintf("bench-%d-%d", i, time.Now().UnixNano()%100000)
		var hcl strings.Builder
		fmt.Fprintf(&hcl, "run %q {\n %s\n}\n", run, accept)
		fmt.Fprintf(&hcl, "agent \"a\" {\n count = %d\n image = %q\n command = [\"sleep\", \"3600\"]\n memory = \"64MiB\"\n cpus = 0.5\n pids = 64\n}\n", agents, image)
		path := filepath.Join(tmp, run+".hcl")
		os.WriteFile(path, []byte(hcl.String()), 0o644)
		cfg, diags := config.Load(path, nil)
		if diags.HasErrors() {
			b.Fatal(diags)
		}
		r := &runner.Runner{Engine: eng, StateRoot: tmp, Program: []string{filepath.Join(tmp, "runner")}}

		start := time.Now()
		if _, err := r.Apply(ctx, cfg); err != nil {
			b.Fatal(err)
		}
		applyT += time.Since(start)
		start = time.Now()
		res, err := r.Apply(ctx, cfg)
		if err != nil || res.Plan.Changes() {
			b.Fatalf("re-apply: %v %v", err, res.Plan)
		}
		reapplyT += time.Since(start)
		if _, err := r.Destroy(ctx, run); err != nil {
			b.Fatal(err)
		}

		start = time.Now()
		var names []string
		for j := 1; j <= agents; j++ {
			name := fmt.Sprintf("%s-docker-%d", run, j)
			names = append(names, name)
			args := []string{"run", "-d", "--name", name, "--read-only", "--cap-drop", "ALL",
				"--security-opt", "no-new-privileges", "--security-opt", "seccomp=" + seccompFile,
				"--tmpfs", "/tmp:rw,nosuid,nodev,size=64m,mode=1777",
				"--tmpfs", "/home/agent:rw,nosuid,nodev,size=64m,uid=1000,gid=1000,mode=0700",
				"--memory", "64m", "--memory-swap", "64m", "--cpus", "0.5", "--pids-limit", "64",
				"--network", "none", "--user", "1000:1000", "-e", "LANG=C.UTF-8", "-e", "HOME=/home/agent",
				"--entrypoint", "/usr/local/bin/runner-agent", image, "init", "--", "sleep", "3600"}
			if out, err := exec.Command("docker", args...).CombinedOutput(); err != nil {
				b.Fatalf("docker run: %v\n%s", err, out)
			}
		}
		dockerT += time.Since(start)
		exec.Command("docker", append([]string{"rm", "-f"}, names...)...).Run()
	}
	n := float64(b.N)
	b.ReportMetric(applyT.Seconds()/n, "apply-s")
	b.ReportMetric(reapplyT.Seconds()/n, "reapply-s")
	b.ReportMetric(dockerT.Seconds()/n, "docker-run-s")
}
