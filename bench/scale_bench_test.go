package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/engine/docker"
	"github.com/runner-dev/runner/policies"
	"github.com/runner-dev/runner/runner"
)

// scaleEnv is what every scale measurement shares: binaries built once, the
// default image, and the seccomp profile as a file for the peers.
type scaleEnv struct {
	tmp, seccomp, accept string
	eng                  *docker.Engine
}

func newScaleEnv(b *testing.B) *scaleEnv {
	b.Helper()
	ctx := context.Background()
	tmp := buildTools(b)
	eng, err := docker.New(ctx, "")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { eng.Close() })
	if err := runner.BuildImage(ctx, eng, runner.ImageOptions{Ref: image, AgentBin: filepath.Join(tmp, "runner-agent")}); err != nil {
		b.Fatal(err)
	}
	info, err := eng.Info(ctx)
	if err != nil {
		b.Fatal(err)
	}
	e := &scaleEnv{tmp: tmp, eng: eng, seccomp: filepath.Join(tmp, "seccomp.json")}
	if !info.MemoryLimit || !info.PidsLimit || !info.CPULimit {
		e.accept = `accept_unenforced = ["memory", "pids", "cpus"]`
	}
	if err := os.WriteFile(e.seccomp, policies.Seccomp, 0o644); err != nil {
		b.Fatal(err)
	}
	return e
}

// config writes and loads a run of n idle agents.
func (e *scaleEnv) config(b *testing.B, run string, n int) *config.Config {
	b.Helper()
	hcl := fmt.Sprintf("run %q {\n %s\n}\nagent \"a\" {\n count = %d\n image = %q\n command = [\"sleep\", \"infinity\"]\n memory = \"64MiB\"\n cpus = 0.5\n pids = 64\n}\n",
		run, e.accept, n, image)
	path := filepath.Join(e.tmp, run+".hcl")
	if err := os.WriteFile(path, []byte(hcl), 0o644); err != nil {
		b.Fatal(err)
	}
	cfg, diags := config.Load(path, nil)
	if diags.HasErrors() {
		b.Fatal(diags)
	}
	return cfg
}

// dockerRunArgs is `docker run -d` of one container hardened as runner's
// are (the peer figure: it waits for neither a read-back nor tmux).
func (e *scaleEnv) dockerRunArgs(name string) []string {
	return []string{"run", "-d", "--name", name, "--read-only", "--cap-drop", "ALL",
		"--security-opt", "no-new-privileges", "--security-opt", "seccomp=" + e.seccomp,
		"--tmpfs", "/tmp:rw,nosuid,nodev,size=64m,mode=1777",
		"--tmpfs", "/home/agent:rw,nosuid,nodev,size=64m,uid=1000,gid=1000,mode=0700",
		"--memory", "64m", "--memory-swap", "64m", "--cpus", "0.5", "--pids-limit", "64",
		"--network", "none", "--user", "1000:1000", "-e", "LANG=C.UTF-8", "-e", "HOME=/home/agent",
		"--label", "runner.bench=1",
		"--entrypoint", "/usr/local/bin/runner-agent", image, "init", "--", "sleep", "infinity"}
}

// dockerRunParallel starts n containers with n concurrent `docker run -d`
// and returns how long until the last returned.
func (e *scaleEnv) dockerRunParallel(b *testing.B, prefix string, n int) time.Duration {
	b.Helper()
	var names []string
	for j := 1; j <= n; j++ {
		names = append(names, fmt.Sprintf("%s-%d", prefix, j))
	}
	defer exec.Command("docker", append([]string{"rm", "-f"}, names...)...).Run()
	errs := make(chan error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for _, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := exec.Command("docker", e.dockerRunArgs(name)...).CombinedOutput(); err != nil {
				errs <- fmt.Errorf("docker run %s: %v\n%s", name, err, out)
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return d
}

// dockerRunSequential is n `docker run -d` one after the other.
func (e *scaleEnv) dockerRunSequential(b *testing.B, prefix string, n int) time.Duration {
	b.Helper()
	var names []string
	defer func() { exec.Command("docker", append([]string{"rm", "-f"}, names...)...).Run() }()
	start := time.Now()
	for j := 1; j <= n; j++ {
		name := fmt.Sprintf("%s-%d", prefix, j)
		names = append(names, name)
		if out, err := exec.Command("docker", e.dockerRunArgs(name)...).CombinedOutput(); err != nil {
			b.Fatalf("docker run %s: %v\n%s", name, err, out)
		}
	}
	return time.Since(start)
}

// composeUp is `docker-compose up -d` of n services hardened like the
// containers above, timed; the project is taken down afterwards.
func (e *scaleEnv) composeUp(b *testing.B, project string, n int) time.Duration {
	b.Helper()
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		b.Fatalf("docker-compose is not installed (apt-get install docker-compose): %v", err)
	}
	var y strings.Builder
	y.WriteString("version: \"2.4\"\nservices:\n")
	for j := 1; j <= n; j++ {
		fmt.Fprintf(&y, `  a%d:
    image: %s
    entrypoint: ["/usr/local/bin/runner-agent"]
    command: ["init", "--", "sleep", "infinity"]
    read_only: true
    cap_drop: ["ALL"]
    security_opt: ["no-new-privileges", "seccomp=%s"]
    tmpfs: ["/tmp:rw,nosuid,nodev,size=64m,mode=1777", "/home/agent:rw,nosuid,nodev,size=64m,uid=1000,gid=1000,mode=0700"]
    mem_limit: 64m
    memswap_limit: 64m
    cpus: 0.5
    pids_limit: 64
    network_mode: none
    user: "1000:1000"
    environment: ["LANG=C.UTF-8", "HOME=/home/agent"]
`, j, image, e.seccomp)
	}
	file := filepath.Join(e.tmp, project+".yml")
	if err := os.WriteFile(file, []byte(y.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	compose := func(args ...string) *exec.Cmd {
		return exec.Command(bin, append([]string{"-p", project, "-f", file}, args...)...)
	}
	defer compose("down", "-t", "0").Run()
	start := time.Now()
	if out, err := compose("up", "-d").CombinedOutput(); err != nil {
		b.Fatalf("docker-compose up: %v\n%s", err, out)
	}
	return time.Since(start)
}

// BenchmarkScale reports, for 10, 25 and 50 idle agents on the local
// engine, in one run: apply-N-s (apply from nothing, including the
// read-back and waiting for tmux), reapply-N-s (a no-op re-apply),
// status-N-s (runner status), destroy-N-s; and the peers beside them:
// par-docker-run-N-s (N concurrent `docker run -d` of the same hardened
// containers), seq-docker-run-10-s and compose-up-10-s (docker-compose
// up -d of the same 10 services), with the ratios the goals name.
func BenchmarkScale(b *testing.B) {
	ctx := context.Background()
	e := newScaleEnv(b)
	stateDir, _ := os.MkdirTemp("", "runner-bench-scale-")
	defer os.RemoveAll(stateDir)
	r := &runner.Runner{Engine: e.eng, StateRoot: stateDir, Program: []string{filepath.Join(e.tmp, "runner")}}
	for i := 0; i < b.N; i++ {
		figures := map[string]time.Duration{}
		for _, n := range []int{10, 25, 50} {
			run := fmt.Sprintf("scale%d-%d", n, time.Now().UnixNano()%100000)
			cfg := e.config(b, run, n)
			b.Cleanup(func() { r.Destroy(context.Background(), run) })
			start := time.Now()
			if _, err := r.Apply(ctx, cfg); err != nil {
				b.Fatalf("apply %d: %v", n, err)
			}
			figures[fmt.Sprintf("apply-%d-s", n)] = time.Since(start)
			start = time.Now()
			res, err := r.Apply(ctx, cfg)
			if err != nil || res.Plan.Changes() {
				b.Fatalf("re-apply %d: %v %v", n, err, res.Plan)
			}
			figures[fmt.Sprintf("reapply-%d-s", n)] = time.Since(start)
			start = time.Now()
			rep, err := r.Status(ctx, cfg)
			if err != nil {
				b.Fatalf("status %d: %v", n, err)
			}
			figures[fmt.Sprintf("status-%d-s", n)] = time.Since(start)
			for _, a := range rep.Agents {
				if a.State != "running" || a.Process != "running" || a.Security != "verified" {
					b.Fatalf("status %d: agent %s: state %s, process %s, security %s", n, a.Agent, a.State, a.Process, a.Security)
				}
			}
			start = time.Now()
			if _, err := r.Destroy(ctx, run); err != nil {
				b.Fatalf("destroy %d: %v", n, err)
			}
			figures[fmt.Sprintf("destroy-%d-s", n)] = time.Since(start)
			figures[fmt.Sprintf("par-docker-run-%d-s", n)] = e.dockerRunParallel(b, run+"-par", n)
		}
		figures["seq-docker-run-10-s"] = e.dockerRunSequential(b, fmt.Sprintf("seq-%d", i), 10)
		figures["compose-up-10-s"] = e.composeUp(b, fmt.Sprintf("runnerbench%d", i), 10)
		for k, d := range figures {
			b.ReportMetric(d.Seconds(), k)
		}
		ratio := func(a, c string) float64 { return figures[a].Seconds() / figures[c].Seconds() }
		b.ReportMetric(ratio("apply-50-s", "par-docker-run-50-s"), "apply50/par-run50")
		b.ReportMetric(ratio("apply-10-s", "par-docker-run-10-s"), "apply10/par-run10")
		b.ReportMetric(ratio("apply-10-s", "compose-up-10-s"), "apply10/compose10")
		b.ReportMetric(ratio("status-50-s", "status-10-s"), "status50/status10")
	}
}
