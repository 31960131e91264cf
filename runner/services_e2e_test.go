package runner_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runner-dev/runner/internal/relay"
	"github.com/runner-dev/runner/internal/state"
	"github.com/runner-dev/runner/runner"
)

// servicesHCL: a may message the operator (and, with more, b); b runs cat.
func servicesHCL(run string, te *testEngine, aSendTo string) string {
	return fmt.Sprintf(`
run %q {
  %s
}
agent "a" {
  image   = %q
  command = ["cat"]
  send_to = [%s]
}
agent "b" {
  image   = %q
  command = ["cat"]
}
`, run, te.accept, testImage, aSendTo, testImage)
}

// hostProcs are the pids of this host's runner processes serving run's
// host services; legacy are those still running a relay or recorder of
// their own for it (there must be none).
func hostProcs(t *testing.T, run string) (services, legacy []int) {
	t.Helper()
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range dirs {
		b, err := os.ReadFile(p)
		if err != nil || len(b) == 0 {
			continue
		}
		argv := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		n := len(argv)
		if n < 5 || argv[n-1] != run || argv[n-3] != "serve" || !strings.HasSuffix(argv[0], "runner") {
			continue
		}
		var pid int
		fmt.Sscan(strings.Split(p, "/")[2], &pid)
		switch argv[n-4] {
		case "services":
			services = append(services, pid)
		default:
			legacy = append(legacy, pid)
		}
	}
	return services, legacy
}

// oneProcess asserts the run has exactly one host-services process, the
// one its pid file names, and returns it.
func oneProcess(t *testing.T, run string, st state.Run) int {
	t.Helper()
	svcs, legacy := hostProcs(t, run)
	if len(svcs) != 1 || len(legacy) != 0 {
		t.Fatalf("run %s: host-services processes %v, other serve processes %v; want exactly one and none", run, svcs, legacy)
	}
	if pid := readPID(t, st.ServicesPID()); pid != svcs[0] {
		t.Fatalf("the pid file names %d, the running process is %d", pid, svcs[0])
	}
	oneChild(t, run, svcs[0])
	return svcs[0]
}

func operatorInbox(t *testing.T, r *runner.Runner, run string) string {
	t.Helper()
	var b strings.Builder
	if _, err := r.Inbox(ctx(t), run, true, func(ds []relay.Delivery) error {
		for _, d := range ds {
			fmt.Fprintf(&b, "%s: %s\n", d.From, d.Body)
		}
		return nil
	}); err != nil {
		t.Fatalf("inbox: %v", err)
	}
	return b.String()
}

// TestHostServices: one process per run (a supervisor and its child) hosts
// the relay and the recorder; a changed relay config is reloaded into it
// (same pid, no message lost); both killed with SIGKILL, it is started
// again by the next command that needs it (here `runner send`), with no
// message lost; destroy leaves no process and no socket.
func TestHostServices(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		run := runName(t, te, "svc")
		destroyAtEnd(t, te, run)
		cfg, _ := writeConfig(t, servicesHCL(run, te, `"operator"`))
		cfg2, _ := writeConfig(t, servicesHCL(run, te, `"operator", "b"`))
		r := newRunner(te)
		res, err := r.Apply(ctx(t), cfg)
		if err != nil {
			t.Fatalf("apply: %v", err)
		}
		st, err := state.ForRun(run)
		if err != nil {
			t.Fatal(err)
		}
		pid := oneProcess(t, run, st)
		logsOf := func(agent string) string {
			var b bytes.Buffer
			r.Logs(ctx(t), cfg, agent, runner.LogsOptions{Out: &b})
			return b.String()
		}
		waitLogs := func(agent, want string) {
			t.Helper()
			for deadline := time.Now().Add(30 * time.Second); !strings.Contains(logsOf(agent), want); time.Sleep(100 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("%s's transcript never showed %q:\n%s\nhost services log:\n%s", agent, want, logsOf(agent), readFile(st.ServicesLog()))
				}
			}
		}

		t.Run("relay and recorder in it", func(t *testing.T) {
			if _, err := r.Send(ctx(t), cfg, "b", "hello-b"); err != nil {
				t.Fatal(err)
			}
			waitPane(t, r, cfg, "b", "[from operator] hello-b")
			waitLogs("b", "[from operator] hello-b")
			if out := agentExec(t, te, res.IDs["a"], "runner-agent", "send", "operator", "from-a-1"); out.ExitCode != 0 {
				t.Fatalf("a to the operator: exit %d: %s%s", out.ExitCode, out.Stdout, out.Stderr)
			}
			if out := agentExec(t, te, res.IDs["a"], "runner-agent", "send", "b", "not yet"); out.ExitCode == 0 {
				t.Fatalf("a reached b, which its send_to does not name")
			}
		})

		t.Run("reload keeps the process", func(t *testing.T) {
			if _, err := r.Apply(ctx(t), cfg2); err != nil {
				t.Fatalf("apply with a changed send_to: %v", err)
			}
			if now := oneProcess(t, run, st); now != pid {
				t.Fatalf("the changed send_to started a new process %d (was %d): it should reload in place", now, pid)
			}
			ids := containerIDs(t, te, run)
			var out string
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				// The shim reconnects to the reloaded relay.
				res := agentExec(t, te, ids["a"], "runner-agent", "send", "b", "via-reload")
				if res.ExitCode == 0 {
					break
				}
				out = res.Stdout + res.Stderr
				if time.Now().After(deadline) {
					t.Fatalf("a still cannot reach b after the reload: %s", out)
				}
			}
			waitPane(t, r, cfg2, "b", "[from a] via-reload")
			if got := operatorInbox(t, r, run); !strings.Contains(got, "a: from-a-1") {
				t.Errorf("the operator's message from a was lost across the relay's reload; inbox:\n%s", got)
			}
			cfg = cfg2
		})

		t.Run("kill -9 then send brings it back", func(t *testing.T) {
			// The supervisor and its child at once (its process group):
			// neither can start the other again.
			child := oneChild(t, run, pid)
			if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			waitGone(t, pid)
			waitGone(t, child)
			if svcs, _ := hostProcs(t, run); len(svcs) != 0 {
				t.Fatalf("still running after kill -9: %v", svcs)
			}
			stdout, stderr, err := cli(te, "send", cfg.File, "b", "after-kill")
			if err != nil {
				t.Fatalf("runner send after kill -9: %v\n%s%s", err, stdout, stderr)
			}
			now := oneProcess(t, run, st)
			if now == pid {
				t.Fatalf("pid %d again", now)
			}
			pid = now
			waitPane(t, r, cfg, "b", "[from operator] after-kill")
			waitLogs("b", "[from operator] after-kill") // the recorder is back too
			if got := operatorInbox(t, r, run); !strings.Contains(got, "a: from-a-1") {
				t.Errorf("the operator's message from a was lost across kill -9; inbox:\n%s", got)
			}
			if ev := auditEvents(t, run); !strings.Contains(ev, `"event":"services_revived"`) {
				t.Errorf("the audit log does not record that the host services were started again:\n%s", ev)
			}
		})

		t.Run("destroy leaves nothing", func(t *testing.T) {
			if _, err := r.Destroy(ctx(t), run); err != nil {
				t.Fatal(err)
			}
			if svcs, legacy := hostProcs(t, run); len(svcs)+len(legacy) != 0 {
				t.Errorf("processes left after destroy: %v %v", svcs, legacy)
			}
			if kids := childProcs(t, run); len(kids) != 0 {
				t.Errorf("services children left after destroy: %v", kids)
			}
			if running(pid) {
				t.Errorf("pid %d still running after destroy", pid)
			}
			for _, p := range []string{st.ServicesSocket(), st.OperatorSocket(), st.AgentSocket("a"), st.AgentSocket("b"), st.Dir()} {
				if _, err := os.Lstat(p); !os.IsNotExist(err) {
					t.Errorf("%s left after destroy (%v)", p, err)
				}
			}
		})
	})
}

// running: pid is a process that has not exited (a zombie has).
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}
