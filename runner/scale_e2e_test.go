package runner_test

import (
	"fmt"
	"strings"
	"testing"
)

// scaleAgents is the largest team issue 13 asks for on a 2-core machine.
const scaleAgents = 50

// Fifty agents apply, report and go away: every one runs with its profile
// verified and its command up, a second apply changes nothing, and
// destroy leaves no container. How fast is
// `make bench`'s business (BenchmarkScale); this proves it works.
func TestScale50(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		run := runName(t, te, "scale")
		destroyAtEnd(t, te, run)
		body := fmt.Sprintf("run %q {\n  %s\n}\nagent \"a\" {\n  count = %d\n  image = %q\n  command = [\"sleep\", \"infinity\"]\n  memory = \"32MiB\"\n  pids = %d\n}\n",
			run, te.accept, scaleAgents, testImage, hardenedPids(te))
		cfg, _ := writeConfig(t, body)
		r := newRunner(te)
		res, err := r.Apply(ctx(t), cfg)
		if err != nil {
			t.Fatalf("apply of %d agents: %v", scaleAgents, err)
		}
		if len(res.IDs) != scaleAgents {
			t.Fatalf("apply started %d agents, want %d", len(res.IDs), scaleAgents)
		}
		again, err := r.Apply(ctx(t), cfg)
		if err != nil || again.Plan.Changes() {
			t.Fatalf("second apply of %d agents: %v, changes: %v", scaleAgents, err, again.Plan.Summary())
		}
		rep, err := r.Status(ctx(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Agents) != scaleAgents {
			t.Fatalf("status lists %d agents, want %d", len(rep.Agents), scaleAgents)
		}
		for i, a := range rep.Agents {
			if want := cfg.Agents[i].Name; a.Agent != want {
				t.Errorf("status row %d is %s, want %s (the config's order)", i, a.Agent, want)
			}
			if a.State != "running" || a.Process != "running" || a.Security != "verified" || a.ID == "" || !strings.HasPrefix(res.IDs[a.Agent], a.ID) {
				t.Errorf("%s: state %q, process %q, security %q %v, id %s (applied %s)", a.Agent, a.State, a.Process, a.Security, a.Violations, a.ID, res.IDs[a.Agent])
			}
		}
		n, err := r.Destroy(ctx(t), run)
		if err != nil || n != scaleAgents {
			t.Fatalf("destroy removed %d containers (want %d): %v", n, scaleAgents, err)
		}
		left, err := te.eng.List(ctx(t), run)
		if err != nil || len(left) != 0 {
			t.Fatalf("after destroy the engine still lists %d containers of the run: %v", len(left), err)
		}
	})
}
