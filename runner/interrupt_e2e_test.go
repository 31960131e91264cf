package runner_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestApplyInterrupted: SIGINT during `runner apply` of several agents
// prints one line saying what is undone and one summary error (not an
// error per agent); no container is left half-created (each is running
// with its tmux up, or gone); with no agent left the host services stop; a
// later apply converges and destroy leaves nothing.
func TestApplyInterrupted(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		const n = 6
		for _, when := range []string{"running [id=", "creating "} {
			t.Run(strings.TrimSpace(strings.SplitN(when, " ", 2)[0]), func(t *testing.T) {
				run := runName(t, te, "int")
				destroyAtEnd(t, te, run)
				cfg, file := writeConfig(t, fmt.Sprintf(`
run %q {
  %s
}
agent "w" {
  count   = %d
  image   = %q
  command = ["cat"]
}
`, run, te.accept, n, testImage))
				apply := startCLI(t, te, "apply", file)
				// Mid-way: at the first agent running (some done, some
				// being created), or at the first being created.
				for deadline := time.Now().Add(2 * time.Minute); !strings.Contains(apply.out.String(), when); time.Sleep(5 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("apply never printed %q:\n%s%s", when, apply.out.String(), apply.err.String())
					}
				}
				if err := apply.cmd.Process.Signal(os.Interrupt); err != nil {
					t.Fatal(err)
				}
				if err := apply.wait(t); err == nil {
					t.Logf("apply finished before the interrupt took effect:\n%s", apply.out.String())
				}
				out := apply.out.String() + apply.err.String()
				t.Logf("interrupted apply:\n%s", out)
				if err := apply.wait(t); err != nil {
					if c := strings.Count(out, "Interrupt ("); c != 1 {
						t.Errorf("%d interrupt lines, want 1:\n%s", c, out)
					}
					if c := strings.Count(out, "Error:"); c != 1 {
						t.Errorf("%d error lines, want one summary:\n%s", c, out)
					}
					if c := strings.Count(out, "context canceled"); c > 1 {
						t.Errorf("\"context canceled\" %d times: the interrupt should be told once:\n%s", c, out)
					}
					if !strings.Contains(out, "interrupted") || !strings.Contains(out, "apply "+file+"` again") {
						t.Errorf("the summary does not say it was interrupted and to apply again:\n%s", out)
					}
				}

				// Each container is complete (running, its tmux answers) or gone.
				r := newRunner(te)
				ids := containerIDs(t, te, run)
				for a, id := range ids {
					obs, err := te.eng.Inspect(ctx(t), id)
					if err != nil || obs.State != "running" {
						t.Errorf("%s [%s] after the interrupt: %v, state %q: half-created", a, id[:12], err, obs.State)
						continue
					}
					if _, err := r.Capture(ctx(t), cfg, a, 5); err != nil {
						t.Errorf("%s is running but its tmux does not answer: %v", a, err)
					}
				}
				svcs, _ := hostProcs(t, run)
				kids := map[int]int{}
				for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
					if kids = childProcs(t, run); len(kids) == len(svcs) || time.Now().After(deadline) {
						break
					}
				}
				if len(ids) == 0 && len(svcs)+len(kids) != 0 {
					t.Errorf("no agent remains, yet host-services processes %v %v run", svcs, kids)
				}
				if len(ids) > 0 && (len(svcs) != 1 || len(kids) != 1) {
					t.Errorf("%d agents remain with host-services processes %v %v, want one supervisor and its child", len(ids), svcs, kids)
				}

				if _, err := r.Apply(ctx(t), cfg); err != nil {
					t.Fatalf("apply after the interrupt: %v", err)
				}
				if got := containerIDs(t, te, run); len(got) != n {
					t.Errorf("%d containers after the second apply, want %d", len(got), n)
				}
				p, err := r.Plan(ctx(t), cfg)
				if err != nil || p.Changes() {
					t.Errorf("plan after the second apply: %v\n%s", err, p)
				}
				if _, err := r.Destroy(ctx(t), run); err != nil {
					t.Fatal(err)
				}
				if got := containerIDs(t, te, run); len(got) != 0 {
					t.Errorf("containers left after destroy: %v", got)
				}
				if svcs, legacy := hostProcs(t, run); len(svcs)+len(legacy)+len(childProcs(t, run)) != 0 {
					t.Errorf("processes left after destroy: %v %v", svcs, legacy)
				}
			})
		}
	})
}
