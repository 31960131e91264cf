package runner_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/runner-dev/runner/internal/audit"
	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/state"
	"github.com/runner-dev/runner/runner"
)

// teamHCL: pm may message the engineers, engineers may message pm, qa may
// message nobody. Every agent runs cat, so whatever lands in its pane as a
// submitted line is echoed back and can be read with capture.
func teamHCL(run string, te *testEngine) string {
	return fmt.Sprintf(`
run %q {
  %s
}
agent "pm" {
  image   = %q
  command = ["cat"]
  send_to = ["eng-*"]
  brief   = "you are the pm"
  checkin {
    every   = "2s"
    message = "status check"
  }
  mount {
    source = %q
    target = "/probe"
  }
}
agent "eng" {
  count   = 2
  image   = %q
  command = ["cat"]
  send_to = ["pm"]
}
agent "qa" {
  image   = %q
  command = ["cat"]
  mount {
    source = %q
    target = "/probe"
  }
}
`, run, te.accept, testImage, bins, testImage, testImage, bins)
}

// waitPane polls an agent's pane until it contains want.
func waitPane(t *testing.T, r *runner.Runner, cfg *config.Config, agent, want string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var out string
	for time.Now().Before(deadline) {
		var err error
		out, err = r.Capture(ctx(t), cfg, agent, 200)
		if err == nil && strings.Contains(out, want) {
			return out
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s's pane never showed %q; it shows:\n%s", agent, want, out)
	return ""
}

func agentExec(t *testing.T, te *testEngine, id string, argv ...string) engine.ExecResult {
	t.Helper()
	res, err := te.eng.Exec(ctx(t), id, "", argv)
	if err != nil {
		t.Fatalf("exec %v: %v", argv, err)
	}
	return res
}

func auditEvents(t *testing.T, run string) string {
	t.Helper()
	st, err := state.ForRun(run)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(st.Audit())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Verify(st.Audit()); err != nil {
		t.Errorf("audit log does not verify: %v", err)
	}
	return string(b)
}

func TestMessaging(t *testing.T) {
	forEveryBackend(t, func(t *testing.T, te *testEngine) {
		run := runName(t, te, "msg")
		destroyAtEnd(t, te, run)
		cfg, _ := writeConfig(t, teamHCL(run, te))
		r := newRunner(te)
		res, err := r.Apply(ctx(t), cfg)
		if err != nil {
			t.Fatalf("apply: %v", err)
		}

		t.Run("brief and check-in", func(t *testing.T) {
			waitPane(t, r, cfg, "pm", "you are the pm")
			waitPane(t, r, cfg, "pm", "status check")
		})

		t.Run("operator to agent", func(t *testing.T) {
			if _, err := r.Send(ctx(t), cfg, "eng-1", "please rebase on main"); err != nil {
				t.Fatal(err)
			}
			waitPane(t, r, cfg, "eng-1", "[from operator] please rebase on main")
		})

		t.Run("agent to agent", func(t *testing.T) {
			out := agentExec(t, te, res.IDs["pm"], "runner-agent", "send", "eng-2", "tests are green on my branch")
			if out.ExitCode != 0 {
				t.Fatalf("runner-agent send: exit %d: %s%s", out.ExitCode, out.Stdout, out.Stderr)
			}
			waitPane(t, r, cfg, "eng-2", "[from pm] tests are green on my branch")
			peers := agentExec(t, te, res.IDs["pm"], "runner-agent", "peers")
			if !strings.Contains(peers.Stdout, "eng-1") || !strings.Contains(peers.Stdout, "eng-2") || strings.Contains(peers.Stdout, "qa") {
				t.Errorf("pm's peers: %q", peers.Stdout)
			}
			inbox := agentExec(t, te, res.IDs["eng-2"], "runner-agent", "inbox")
			if !strings.Contains(inbox.Stdout, "tests are green") {
				t.Errorf("eng-2's inbox: %q %q", inbox.Stdout, inbox.Stderr)
			}
		})

		t.Run("denied by send_to", func(t *testing.T) {
			out := agentExec(t, te, res.IDs["qa"], "runner-agent", "send", "pm", "let me in")
			if out.ExitCode == 0 {
				t.Fatalf("qa may message nobody, but send exited 0: %s", out.Stdout)
			}
			if !strings.Contains(out.Stderr, "forbidden") {
				t.Errorf("denial should say why: %q", out.Stderr)
			}
			if ev := auditEvents(t, run); !strings.Contains(ev, `"event":"deny"`) || !strings.Contains(ev, `"actor":"qa"`) {
				t.Errorf("the denial is not in the audit log")
			}
		})

		t.Run("credentials", func(t *testing.T) {
			var forged map[string]string
			execJSON(t, te, res.IDs["qa"], &forged, "/probe/testprobe", "relay-forge")
			for name, e := range forged {
				if e == "ok" {
					t.Errorf("a %s credential got into the relay", name)
				}
			}
			st, _ := state.ForRun(run)
			pmCred, _ := os.ReadFile(st.Cred("pm"))
			qaCred, _ := os.ReadFile(st.Cred("qa"))
			got := agentExec(t, te, res.IDs["qa"], "cat", runner.CredentialTarget)
			if strings.TrimSpace(got.Stdout) != strings.TrimSpace(string(qaCred)) {
				t.Errorf("qa's container holds %q, not qa's credential", got.Stdout)
			}
			if strings.Contains(got.Stdout, strings.TrimSpace(string(pmCred))) {
				t.Error("qa's container holds pm's credential")
			}
			// testprobe, not ls: on Debian's runsc, coreutils' statx
			// fails with EINVAL.
			ls := agentExec(t, te, res.IDs["qa"], "/probe/testprobe", "ls", "/run/runner")
			if strings.TrimSpace(ls.Stdout) != `["relay.sock"]` {
				t.Errorf("/run/runner should hold only relay.sock, holds %q", ls.Stdout)
			}
			if touch := agentExec(t, te, res.IDs["qa"], "touch", "/run/runner/x"); touch.ExitCode == 0 {
				t.Error("/run/runner is writable from a container")
			}
		})

		t.Run("keys stay text", func(t *testing.T) {
			hostile := "C-c\x03 \x1b[31mred\x1b[0m \x1b[201~ end\x1b]0;title\x07 Enter"
			if _, err := r.Send(ctx(t), cfg, "eng-1", hostile); err != nil {
				t.Fatal(err)
			}
			out := waitPane(t, r, cfg, "eng-1", "Enter")
			if !strings.Contains(out, "C-c") || !strings.Contains(out, "[31mred") {
				t.Errorf("text did not arrive literally (minus controls):\n%s", out)
			}
			rep, err := r.Status(ctx(t), cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range rep.Agents {
				if a.Agent == "eng-1" && a.Process != "running" {
					t.Errorf("eng-1's cat is %q after a message with ^C and ESC; want running", a.Process)
				}
			}
			// Still usable afterwards.
			r.Send(ctx(t), cfg, "eng-1", "after the storm")
			waitPane(t, r, cfg, "eng-1", "[from operator] after the storm")
		})

		t.Run("hostile clients", func(t *testing.T) {
			var rep map[string]any
			execJSON(t, te, res.IDs["qa"], &rep, "/probe/testprobe", "relay-hostile")
			if n, _ := rep["rate_limited"].(float64); n == 0 {
				t.Errorf("a flood of 500 requests was never rate limited: %v", rep)
			}
			if _, err := r.Send(ctx(t), cfg, "eng-2", "still standing"); err != nil {
				t.Fatalf("relay after hostile clients: %v", err)
			}
			waitPane(t, r, cfg, "eng-2", "[from operator] still standing")
		})

		t.Run("cli", func(t *testing.T) {
			path := cfg.File
			cmd := exec.Command(filepath.Join(bins, "runner"), "send", path, "eng-2", "via the cli")
			cmd.Env = append(os.Environ(), dockerHostEnv(te)...)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("runner send: %v\n%s", err, out)
			}
			waitPane(t, r, cfg, "eng-2", "[from operator] via the cli")
			cmd = exec.Command(filepath.Join(bins, "runner"), "audit", path, "--verify")
			cmd.Env = append(os.Environ(), dockerHostEnv(te)...)
			if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "hash chain intact") {
				t.Errorf("runner audit --verify: %v\n%s", err, out)
			}
		})
	})
}

// dockerHostEnv is what the runner CLI needs to reach te's engine.
func dockerHostEnv(te *testEngine) []string { return te.env }

// TestDeliverySurvivesRestarts: messages to a stopped agent wait; a relay
// killed with SIGKILL (the whole host-services process) loses nothing;
// everything arrives once, in order.
func TestDeliverySurvivesRestarts(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		run := runName(t, te, "dur")
		destroyAtEnd(t, te, run)
		cfg, _ := writeConfig(t, teamHCL(run, te))
		r := newRunner(te)
		res, err := r.Apply(ctx(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		id := res.IDs["eng-1"]
		if err := te.raw.ContainerStop(ctx(t), id, stopOptions()); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 3; i++ {
			if _, err := r.Send(ctx(t), cfg, "eng-1", fmt.Sprintf("queued-%d", i)); err != nil {
				t.Fatalf("send while eng-1 is stopped: %v", err)
			}
		}
		st, _ := state.ForRun(run)
		pid := readPID(t, st.ServicesPID())
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitGone(t, pid)
		// Re-apply starts the host services again (and keeps the stopped container's
		// replacement out of it: start the same container instead).
		if err := te.eng.Start(ctx(t), id); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Apply(ctx(t), cfg); err != nil {
			t.Fatal(err)
		}
		if ids := containerIDs(t, te, run); ids["eng-1"] != id {
			t.Errorf("eng-1's container was replaced; the test wants the restarted one")
		}
		// cat shows each submitted line twice: the terminal's echo, then
		// cat's own output. Wait for cat's copy of the last one.
		out := waitPane(t, r, cfg, "eng-1", "queued-3\n[from operator] queued-3")
		for i := 1; i <= 3; i++ {
			want := fmt.Sprintf("[from operator] queued-%d", i)
			if n := strings.Count(out, want); n != 2 {
				t.Errorf("%q appears %d times in the pane, want 2 (echo + cat: delivered once):\n%s", want, n, out)
			}
		}
		if a, b := strings.Index(out, "queued-1"), strings.Index(out, "queued-3"); a > b {
			t.Errorf("out of order:\n%s", out)
		}
	})
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	var pid int
	fmt.Sscan(string(b), &pid)
	if pid <= 0 {
		t.Fatalf("pid file holds %q", b)
	}
	return pid
}

func waitGone(t *testing.T, pid int) {
	for i := 0; i < 100; i++ {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A zombie still answers kill 0; it is gone for our purposes.
}

func stopOptions() container.StopOptions {
	timeout := 5
	return container.StopOptions{Timeout: &timeout}
}
