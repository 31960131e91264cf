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
	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/engine/docker"
	"github.com/runner-dev/runner/internal/state"
	"github.com/runner-dev/runner/runner"
)

// benchRun applies n agents running cat (agent "a-1".."a-N") on the local
// engine, with the relay started from a freshly built runner.
func benchRun(b *testing.B, n int) (*runner.Runner, *config.Config, engine.Engine, func()) {
	b.Helper()
	return benchRunCommand(b, n, `["cat"]`)
}

// benchRunCommand is benchRun with the agents' command (HCL list syntax).
func benchRunCommand(b *testing.B, n int, command string) (*runner.Runner, *config.Config, engine.Engine, func()) {
	b.Helper()
	ctx := context.Background()
	tmp := buildTools(b)
	eng, err := docker.New(ctx, "")
	if err != nil {
		b.Fatal(err)
	}
	if err := runner.BuildImage(ctx, eng, runner.ImageOptions{Ref: image, AgentBin: filepath.Join(tmp, "runner-agent")}); err != nil {
		b.Fatal(err)
	}
	stateDir, _ := os.MkdirTemp("", "runner-bench-state-")
	run := fmt.Sprintf("benchrelay-%d", time.Now().UnixNano()%100000)
	hcl := fmt.Sprintf("run %q {}\nagent \"a\" {\n count = %d\n image = %q\n command = %s\n memory = \"64MiB\"\n pids = 64\n}\n", run, n, image, command)
	path := filepath.Join(tmp, "agents.hcl")
	os.WriteFile(path, []byte(hcl), 0o644)
	cfg, diags := config.Load(path, nil)
	if diags.HasErrors() {
		b.Fatal(diags)
	}
	r := &runner.Runner{Engine: eng, StateRoot: stateDir, Program: []string{filepath.Join(tmp, "runner")}}
	var once sync.Once
	done := func() {
		once.Do(func() {
			r.Destroy(context.Background(), run)
			eng.Close()
			os.RemoveAll(stateDir)
		})
	}
	b.Cleanup(done) // also when Apply or the benchmark fails half-way
	if _, err := r.Apply(ctx, cfg); err != nil {
		b.Fatal(err)
	}
	return r, cfg, eng, done
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func containerPID(b *testing.B, id string) int {
	out, err := exec.Command("docker", "inspect", "-f", "{{.State.Pid}}", id).Output()
	if err != nil {
		b.Fatal(err)
	}
	var pid int
	fmt.Sscan(string(out), &pid)
	return pid
}

// BenchmarkRelayMemory50 applies 50 agents, each with its shim connected
// and subscribed, and reports the relay's resident memory (rss-MiB) before
// and after the operator sent every agent 5 messages (rss-after-MiB).
func BenchmarkRelayMemory50(b *testing.B) {
	for i := 0; i < b.N; i++ {
		r, cfg, _, done := benchRun(b, 50)
		st := state.Run{Root: r.StateRoot, Name: cfg.Run.Name}
		waitSubscribed(b, st, 50)
		b.ReportMetric(rssMiB(b, st), "rss-MiB")
		ctx := context.Background()
		c, err := r.OperatorClient(ctx, cfg.Run.Name)
		if err != nil {
			b.Fatal(err)
		}
		for j := 0; j < 5; j++ {
			for _, a := range cfg.Agents {
				// The operator is rate limited too (20/s); wait it out.
				for {
					_, err := c.Send(a.Name, fmt.Sprintf("m%d", j))
					if err == nil {
						break
					}
					if !strings.Contains(err.Error(), "rate_limited") {
						b.Fatal(err)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		}
		c.Close()
		b.ReportMetric(rssMiB(b, st), "rss-after-MiB")
		done()
	}
}

func waitSubscribed(b *testing.B, st state.Run, n int) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		log, _ := os.ReadFile(st.Audit())
		if strings.Count(string(log), `"event":"subscribe"`) >= n {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.Fatalf("fewer than %d shims subscribed to the relay", n)
}

func rssMiB(b *testing.B, st state.Run) float64 {
	// The relay's memory is the host-services process's (it also holds
	// the recorder).
	pidb, err := os.ReadFile(st.ServicesPID())
	if err != nil {
		b.Fatal(err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%s/status", strings.Fields(string(pidb))[0]))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			var kb float64
			fmt.Sscan(strings.TrimSpace(strings.TrimPrefix(line, "VmRSS:")), &kb)
			return kb / 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
