package runner_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runner-dev/runner/internal/state"
)

// childProcs are the pids of the run's `runner services child` processes
// (what a supervisor keeps running), each with its parent's pid.
func childProcs(t *testing.T, run string) map[int]int {
	t.Helper()
	out := map[int]int{}
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range dirs {
		b, err := os.ReadFile(p)
		if err != nil || len(b) == 0 {
			continue
		}
		argv := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		n := len(argv)
		if n < 5 || argv[n-1] != run || argv[n-3] != "child" || argv[n-4] != "services" || !strings.HasSuffix(argv[0], "runner") {
			continue
		}
		var pid int
		fmt.Sscan(strings.Split(p, "/")[2], &pid)
		if running(pid) {
			out[pid] = ppid(pid)
		}
	}
	return out
}

func ppid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	var pp int
	if len(f) > 1 {
		fmt.Sscan(f[1], &pp)
	}
	return pp
}

// oneChild asserts the supervisor has exactly one child and returns it.
func oneChild(t *testing.T, run string, supervisor int) int {
	t.Helper()
	kids := childProcs(t, run)
	if len(kids) != 1 {
		t.Fatalf("run %s: services children %v, want exactly one (of supervisor %d)", run, kids, supervisor)
	}
	for pid, pp := range kids {
		if pp != supervisor {
			t.Fatalf("the services child %d has parent %d, want the supervisor %d", pid, pp, supervisor)
		}
		return pid
	}
	return 0
}

// TestServicesSupervised: the process that serves the run's relay,
// recorder and check-ins, killed with SIGKILL, is started again by its
// supervisor with no runner command run; the supervisor killed, its child
// starts a new one before it stops: the audit log records each restart, the agents' shims reconnect by themselves (a message sent
// after the kill reaches the pane), check-ins keep firing, and no message
// accepted before or after is lost or delivered twice. destroy stops the
// supervisor and its child.
func TestServicesSupervised(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		run := runName(t, te, "sup")
		destroyAtEnd(t, te, run)
		cfg, _ := writeConfig(t, fmt.Sprintf(`
run %q {
  %s
}
agent "a" {
  image   = %q
  command = ["cat"]
  send_to = ["operator"]
}
agent "b" {
  image   = %q
  command = ["cat"]
  checkin {
    every   = "1s"
    message = "tick"
  }
}
`, run, te.accept, testImage, testImage))
		r := newRunner(te)
		res, err := r.Apply(ctx(t), cfg)
		if err != nil {
			t.Fatalf("apply: %v", err)
		}
		st, err := state.ForRun(run)
		if err != nil {
			t.Fatal(err)
		}
		sup := oneProcess(t, run, st)
		child := oneChild(t, run, sup)

		if _, err := r.Send(ctx(t), cfg, "b", "before-kill"); err != nil {
			t.Fatal(err)
		}
		waitPane(t, r, cfg, "b", "[from operator] before-kill")
		if out := agentExec(t, te, res.IDs["a"], "runner-agent", "send", "operator", "from-a-before"); out.ExitCode != 0 {
			t.Fatalf("a to the operator: exit %d: %s%s", out.ExitCode, out.Stdout, out.Stderr)
		}

		for round := 1; round <= 2; round++ {
			if err := syscall.Kill(child, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			// Only /proc and the audit log are read until it is back: no
			// runner command could have started it.
			var now int
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				kids := childProcs(t, run)
				if _, old := kids[child]; !old && len(kids) == 1 {
					now = oneChild(t, run, sup)
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("round %d: no new services child after SIGKILL of %d: %v\nlog:\n%s", round, child, kids, readFile(st.ServicesLog()))
				}
			}
			want := fmt.Sprintf(`[pid=%d] ended (signal: killed); started again [pid=%d]`, child, now)
			for deadline := time.Now().Add(30 * time.Second); !strings.Contains(auditEvents(t, run), want); time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("round %d: the audit log has no services_restart entry %q:\n%s", round, want, auditEvents(t, run))
				}
			}
			child = now
			if got := oneProcess(t, run, st); got != sup {
				t.Fatalf("round %d: the supervisor is %d, was %d", round, got, sup)
			}
		}

		// The supervisor killed: its child starts a new supervisor (and
		// stops), which starts a new child; still no runner command.
		if err := syscall.Kill(sup, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		old := sup
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			svcs, _ := hostProcs(t, run)
			kids := childProcs(t, run)
			if len(svcs) == 1 && svcs[0] != old && len(kids) == 1 && kids[child] == 0 {
				if _, gone := kids[child]; !gone {
					sup = svcs[0]
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no new supervisor after SIGKILL of %d: supervisors %v, children %v\nlog:\n%s", old, svcs, kids, readFile(st.ServicesLog()))
			}
		}
		child = oneChild(t, run, sup)
		want := fmt.Sprintf("the supervisor [pid=%d] was killed; its child started a new one", old)
		for deadline := time.Now().Add(30 * time.Second); !strings.Contains(auditEvents(t, run), want); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the audit log does not say %q:\n%s", want, auditEvents(t, run))
			}
		}
		for deadline := time.Now().Add(30 * time.Second); readPID(t, st.ServicesPID()) != sup; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the pid file does not name the new supervisor %d", sup)
			}
		}

		// Delivering after the restarts: the relay serves and b's shim has
		// subscribed again.
		if _, err := r.Send(ctx(t), cfg, "b", "after-kill"); err != nil {
			t.Fatalf("send after the restart: %v", err)
		}
		out := waitPane(t, r, cfg, "b", "after-kill\n[from operator] after-kill")
		ticks := strings.Count(out, "[check-in] tick")
		waitPaneCount(t, r, cfg, "b", "[check-in] tick", ticks+4) // check-ins fire (echo + cat: 2 per tick)
		if out := agentExec(t, te, res.IDs["a"], "runner-agent", "send", "operator", "from-a-after"); out.ExitCode != 0 {
			t.Fatalf("a to the operator after the restart: exit %d: %s%s", out.ExitCode, out.Stdout, out.Stderr)
		}
		out, err = r.Capture(ctx(t), cfg, "b", 2000)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []string{"[from operator] before-kill", "[from operator] after-kill"} {
			if n := strings.Count(out, m); n != 2 {
				t.Errorf("%q appears %d times in b's pane, want 2 (echo + cat: delivered once):\n%s", m, n, out)
			}
		}
		inbox := operatorInbox(t, r, run)
		for _, m := range []string{"a: from-a-before\n", "a: from-a-after\n"} {
			if n := strings.Count(inbox, m); n != 1 {
				t.Errorf("%q is %d times in the operator's inbox, want once:\n%s", m, n, inbox)
			}
		}
		if ev := auditEvents(t, run); strings.Count(ev, `"event":"services_revived"`) != 1 || strings.Count(ev, `"event":"services_restart"`) != 2 {
			t.Errorf("want exactly 2 services_restart entries and 1 services_revived (by the child):\n%s", ev)
		}
		if got := oneProcess(t, run, st); got != sup {
			t.Fatalf("the supervisor is %d, was %d", got, sup)
		}

		if _, err := r.Destroy(ctx(t), run); err != nil {
			t.Fatal(err)
		}
		if svcs, legacy := hostProcs(t, run); len(svcs)+len(legacy) != 0 {
			t.Errorf("supervisors left after destroy: %v %v", svcs, legacy)
		}
		if kids := childProcs(t, run); len(kids) != 0 {
			t.Errorf("services children left after destroy: %v", kids)
		}
	})
}
