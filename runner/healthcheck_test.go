package runner_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/profile"
	"github.com/runner-dev/runner/internal/shim"
)

// Every agent container has the engine's health check, runner-agent
// health: healthy while tmux and the agent's pane are up, unhealthy once
// the pane is gone, as the engine, docker ps (List) and status report it.
func TestHealthCheck(t *testing.T) {
	// Shortened so the engine's verdicts come in seconds; a check that
	// differs from the spec would be refused by apply, so this is the
	// check the containers really get.
	saved := profile.HealthTimings
	profile.HealthTimings = engine.Health{Interval: time.Second, Timeout: 5 * time.Second, StartPeriod: time.Second, Retries: 2}
	t.Cleanup(func() { profile.HealthTimings = saved })

	forEachEngine(t, func(t *testing.T, te *testEngine) {
		run := runName(t, te, "hc")
		destroyAtEnd(t, te, run)
		cfg, file := writeConfig(t, fmt.Sprintf(`
run %q {
  %s
}
agent "a" {
  image   = %q
  command = ["cat"]
}
`, run, te.accept, testImage))
		r := newRunner(te)
		res, err := r.Apply(ctx(t), cfg)
		if err != nil {
			t.Fatalf("apply: %v", err)
		}
		id := res.IDs["a"]

		// From outside: the engine's record of the check is the exec form
		// of runner-agent health, no shell.
		c, err := te.raw.ContainerInspect(ctx(t), id)
		if err != nil {
			t.Fatal(err)
		}
		hc := c.Config.Healthcheck
		if hc == nil || !slices.Equal(hc.Test, []string{"CMD", "/usr/local/bin/runner-agent", "health"}) || hc.Interval != time.Second || hc.Retries != 2 {
			t.Fatalf("health check as the engine has it: %+v", hc)
		}

		// waitHealth waits for the engine's verdict, then checks that List
		// (what docker ps shows) and status say the same.
		waitHealth := func(want string) {
			t.Helper()
			deadline := time.Now().Add(60 * time.Second)
			for {
				c, err := te.raw.ContainerInspect(ctx(t), id)
				if err != nil {
					t.Fatal(err)
				}
				got := ""
				if c.State.Health != nil {
					got = c.State.Health.Status
				}
				if got == want {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("health stayed %q, want %q; state %+v", got, want, c.State.Health)
				}
				time.Sleep(200 * time.Millisecond)
			}
			list, err := te.eng.List(ctx(t), run)
			if err != nil || len(list) != 1 || list[0].Health != want {
				t.Errorf("List: %+v, %v; want health %q", list, err, want)
			}
			rep, err := r.Status(ctx(t), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if a := agentOf(rep, "a"); a.Health != want || a.State != "running" || a.Security != "verified" {
				t.Errorf("status: health %q state %q security %q %v; want %q, running, verified", a.Health, a.State, a.Security, a.Violations, want)
			}
			cmd := exec.Command(filepath.Join(bins, "runner"), "status", file)
			cmd.Env = append(os.Environ(), "DOCKER_HOST="+te.info.Endpoint)
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "running ("+want+")") {
				t.Errorf("runner status: %v\n%s", err, out)
			}
		}
		inside := func(argv ...string) (string, int) {
			t.Helper()
			res, err := te.eng.Exec(ctx(t), id, "", argv)
			if err != nil {
				t.Fatalf("exec %q: %v", argv, err)
			}
			return res.Stdout + res.Stderr, res.ExitCode
		}

		waitHealth("healthy")
		if out, code := inside("/usr/local/bin/runner-agent", "health"); code != 0 || !strings.HasPrefix(out, "healthy: tmux and the agent's pane are up") {
			t.Errorf("runner-agent health inside: exit %d: %s", code, out)
		}

		// The agent's pane goes; another window keeps tmux (and so the
		// container) up.
		pane, code := inside("tmux", "-S", shim.DefaultSocket, "show-options", "-gqv", shim.OptionPane)
		pane = strings.TrimSpace(pane)
		if code != 0 || !strings.HasPrefix(pane, "%") {
			t.Fatalf("the agent's pane: %q (exit %d)", pane, code)
		}
		if out, code := inside("tmux", "-S", shim.DefaultSocket, "new-window", "-d", "cat"); code != 0 {
			t.Fatalf("new-window: %s", out)
		}
		if out, code := inside("tmux", "-S", shim.DefaultSocket, "kill-pane", "-t", pane); code != 0 {
			t.Fatalf("kill-pane: %s", out)
		}
		if out, code := inside("/usr/local/bin/runner-agent", "health"); code != 1 || !strings.HasPrefix(out, "unhealthy: ") {
			t.Errorf("runner-agent health inside, pane gone: exit %d: %s", code, out)
		}
		waitHealth("unhealthy")
	})
}
