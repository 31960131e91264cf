package runner_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/runner-dev/runner/internal/plan"
)

// diffConfig is one agent whose memory, command, send_to and brief the
// test changes.
func diffConfig(run string, te *testEngine, memory, command, sendTo, brief string) string {
	return fmt.Sprintf(`
run %q {
  %s
}
agent "a" {
  image   = %q
  command = %s
  memory  = %q
  pids    = 64
  send_to = %s
  brief   = %q
}
`, run, te.accept, testImage, command, memory, sendTo, brief)
}

// Plan diffs against what is deployed (the container's label, the run's
// relay config and applied.json), attribute by attribute, marks what
// weakens isolation, and apply does what it said: in-place changes keep
// the container, and the next plan is empty.
func TestPlanDiffsAgainstDeployed(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		run := runName(t, te, "diff")
		destroyAtEnd(t, te, run)
		sleep := `["sleep", "3600"]`
		cfg, path := writeConfig(t, diffConfig(run, te, "64MiB", sleep, "[]", "first"))
		r := newRunner(te)
		if _, err := r.Apply(ctx(t), cfg); err != nil {
			t.Fatal(err)
		}
		first := containerIDs(t, te, run)["a"]
		planOf := func(body string) plan.Plan {
			t.Helper()
			must(t, os.WriteFile(path, []byte(body), 0o644))
			p, err := r.Plan(ctx(t), load(t, path))
			if err != nil {
				t.Fatal(err)
			}
			return p
		}

		// Container settings: a replace, each attribute on its line.
		p := planOf(diffConfig(run, te, "128MiB", `["sleep", "7200"]`, "[]", "first"))
		out := p.String()
		for _, want := range []string{
			"  -/+ replace  a  (forces replacement: command, memory)\n",
			`        ~ command: ["sleep", "3600"] -> ["sleep", "7200"]  # forces replacement` + "\n",
			`    !   ~ memory: "64MiB" -> "128MiB"  # forces replacement` + "\n",
			"1 change weakens isolation (marked !).\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("plan lacks %q:\n%s", want, out)
			}
		}

		// send_to and the brief: in place; apply keeps the container and
		// gives the running agent its new brief.
		p = planOf(diffConfig(run, te, "64MiB", sleep, `["operator"]`, "second"))
		if p.Count(plan.Update) != 1 || p.Count(plan.Replace) != 0 {
			t.Fatalf("send_to and brief changed: want one in-place update:\n%s", p)
		}
		out = p.String()
		for _, want := range []string{
			`    ~ update   a  (~ send_to: [] -> ["operator"]; ~ brief: (sha256 `,
			`    !   ~ send_to: [] -> ["operator"]  # in place: the relay reloads its ACL` + "\n",
			`          weakens isolation: a may now message "operator"` + "\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("plan lacks %q:\n%s", want, out)
			}
		}
		res, err := r.Apply(ctx(t), load(t, path))
		if err != nil {
			t.Fatal(err)
		}
		if res.Plan.String() != p.String() {
			t.Errorf("apply did another plan than plan showed:\nplan:\n%s\napply:\n%s", p, res.Plan)
		}
		if now := containerIDs(t, te, run)["a"]; now != first {
			t.Errorf("an in-place update replaced the container: %s -> %s", first, now)
		}
		rep, err := r.Status(ctx(t), load(t, path))
		if err != nil {
			t.Fatal(err)
		}
		if q := rep.Agents[0].Queued; q != 2 {
			t.Errorf("the agent has %d messages queued; want 2 (the first brief and the new one)", q)
		}
		if p, err := r.Plan(ctx(t), load(t, path)); err != nil || p.Changes() {
			t.Errorf("plan after apply: %v\n%s", err, p)
		}
	})
}
