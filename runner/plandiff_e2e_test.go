package runner_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runner-dev/runner/internal/plan"
	"github.com/runner-dev/runner/runner"
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
		logPath, err := r.AuditLog(run)
		if err != nil {
			t.Fatal(err)
		}
		log, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(log), "kind=brief"); n != 2 {
			t.Errorf("the relay accepted %d briefs for a; want 2 (the first at create, the new one in place):\n%s", n, log)
		}
		if p, err := r.Plan(ctx(t), load(t, path)); err != nil || p.Changes() {
			t.Errorf("plan after apply: %v\n%s", err, p)
		}
	})
}

// The CLI on a run found by name: plan -detailed-exitcode, apply without a
// terminal (a weakening plan goes on: CI never prompts), plan -json, a run
// renamed in its file (plan names the old run and how to remove it), then
// with the file gone: ls, status --run and destroy --run.
func TestCLIRunByName(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		run := runName(t, te, "byname")
		destroyAtEnd(t, te, run)
		body := func(name, memory string) string {
			return fmt.Sprintf("run %q {\n  %s\n}\nagent \"a\" {\n  image = %q\n  command = [\"sh\", \"-c\", \"echo hello-from-a; exec sleep 3600\"]\n  memory = %q\n  pids = 64\n}\n", name, te.accept, testImage, memory)
		}
		_, path := writeConfig(t, body(run, "64MiB"))
		cli := func(wantCode int, args ...string) string {
			t.Helper()
			cmd := exec.Command(filepath.Join(bins, "runner"), args...)
			cmd.Env = os.Environ()
			if te.host != "" {
				cmd.Env = append(cmd.Env, "DOCKER_HOST="+te.host)
			}
			out, err := cmd.CombinedOutput() // stdin: /dev/null, no terminal
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != wantCode {
				t.Fatalf("runner %v: exit %d, want %d:\n%s", args, code, wantCode, out)
			}
			return string(out)
		}
		cli(2, "plan", "-detailed-exitcode", path)
		cli(0, "apply", path)
		cli(0, "plan", "-detailed-exitcode", path)

		must(t, os.WriteFile(path, []byte(body(run, "128MiB")), 0o644))
		out := cli(0, "apply", path)
		if !strings.Contains(out, `!   ~ memory: "64MiB" -> "128MiB"`) || !strings.Contains(out, "Apply complete") || strings.Contains(out, "Enter a value") {
			t.Errorf("apply without a terminal of a weakening plan: want the plan shown and no question:\n%s", out)
		}
		var pj plan.JSON
		if err := json.Unmarshal([]byte(cli(0, "plan", "-json", path)), &pj); err != nil || pj.Changes || pj.FormatVersion != plan.FormatVersion || len(pj.Actions) != 1 || pj.Actions[0].Action != plan.Keep {
			t.Errorf("plan -json after apply: %v %+v", err, pj)
		}

		renamed := run + "x"
		must(t, os.WriteFile(path, []byte(body(renamed, "128MiB")), 0o644))
		out = cli(0, "plan", path)
		if want := fmt.Sprintf("run %q (1 container) was applied from this file under its old name", run); !strings.Contains(out, want) || !strings.Contains(out, "runner destroy --run "+run) {
			t.Errorf("plan after renaming the run lacks %q and the way to remove it:\n%s", want, out)
		}

		must(t, os.Remove(path))
		var runs []runner.RunSummary
		if err := json.Unmarshal([]byte(cli(0, "ls", "-o", "json")), &runs); err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(runs, func(s runner.RunSummary) bool { return s.Run == run })
		if i < 0 {
			t.Fatalf("ls lacks %s: %+v", run, runs)
		}
		if s := runs[i]; s.Running != 1 || s.Agents != 1 || s.File != path || !s.FileMissing || !s.State || s.Since == nil {
			t.Errorf("ls row: %+v", s)
		}
		if out := cli(0, "ls"); !strings.Contains(out, path+" (gone: use --run "+run+")") {
			t.Errorf("ls table:\n%s", out)
		}
		var rep runner.StatusReport
		if err := json.Unmarshal([]byte(cli(0, "status", "--run", run, "-json")), &rep); err != nil {
			t.Fatal(err)
		}
		if len(rep.Agents) != 1 || rep.Agents[0].Security != "verified" || rep.Agents[0].State != "running" {
			t.Errorf("status --run: %+v", rep.Agents)
		}
		cli(1, "capture", "--run", run, "nope")
		// logs with no agent: every agent's lines, prefixed by its name.
		var logs string
		for i := 0; i < 50 && !strings.Contains(logs, "a | hello-from-a\n"); i++ {
			time.Sleep(100 * time.Millisecond)
			logs = cli(0, "logs", "--run", run)
		}
		if !strings.Contains(logs, "a | hello-from-a\n") {
			t.Errorf("logs --run of all agents:\n%s", logs)
		}
		if out := cli(0, "send", "--run", run, "a*", "hello by glob"); !regexp.MustCompile(`^Message \d+ to a accepted by the relay.\n$`).MatchString(out) {
			t.Errorf("send to a glob:\n%s", out)
		}
		if out := cli(0, "schedule", "--run", run, "a", "--in", "30m", "status?"); !strings.Contains(out, "for a scheduled by the relay, due ") {
			t.Errorf("schedule:\n%s", out)
		}
		out = cli(0, "destroy", "--run", run)
		if !strings.Contains(out, fmt.Sprintf("Destroy complete: run %q, 1 container removed.", run)) {
			t.Errorf("destroy --run:\n%s", out)
		}
		if ids := containerIDs(t, te, run); len(ids) != 0 {
			t.Errorf("containers left after destroy --run: %v", ids)
		}
		cli(1, "status", "--run", run)
		// The destroyed run's audit log, from the archive, filtered.
		out = cli(0, "audit", "--run", run, "--event", "send", "--agent", "a")
		if !strings.Contains(out, "archived audit log") || !strings.Contains(out, " send ") || strings.Contains(out, " destroy ") {
			t.Errorf("audit --run of a destroyed run, --event send --agent a:\n%s", out)
		}
		if out := cli(0, "audit", "--run", run, "--event", "schedule"); !regexp.MustCompile(` schedule +operator +a +id=\d+ due=`).MatchString(out) {
			t.Errorf("the operator's schedule is not audited:\n%s", out)
		}
		if out := cli(0, "audit", "--run", run, "--event", "destroy"); strings.Count(out, " destroy ") != 1 {
			t.Errorf("audit --event destroy:\n%s", out)
		}
	})
}

// An agent whose command cannot start fails the apply, naming the agent
// and the exit status, and leaves no container for it (so the next apply
// tries again instead of reporting no changes); the other agent runs.
func TestApplyFailsForACommandThatCannotStart(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		run := runName(t, te, "nocmd")
		destroyAtEnd(t, te, run)
		cfg, _ := writeConfig(t, teamConfig(run, te, map[string]string{
			"good":  `["sleep", "3600"]`,
			"bad":   `["no-such-command-xyz"]`,
			"early": `["sh", "-c", "echo early-out; exit 4"]`,
		}))
		_, err := newRunner(te).Apply(ctx(t), cfg)
		var ae *runner.ApplyError
		if !errors.As(err, &ae) || len(ae.Failed) != 2 {
			t.Fatalf("want an apply error for two agents (bad, early), got %v", err)
		}
		msgs := map[string]string{}
		for _, f := range ae.Failed {
			name, _, _ := strings.Cut(f.Error(), ": ")
			msgs[name] = f.Error()
		}
		for agent, wants := range map[string][]string{
			"bad":   {`"no-such-command-xyz"`, "exit status 127", "not found"},
			"early": {"exited within its first second (exit status 4)", "early-out"},
		} {
			for _, want := range wants {
				if !strings.Contains(msgs[agent], want) {
					t.Errorf("apply error for %s lacks %q:\n%s", agent, want, msgs[agent])
				}
			}
		}
		ids := containerIDs(t, te, run)
		if ids["bad"] != "" || ids["early"] != "" || ids["good"] == "" {
			t.Errorf("containers after the failed apply: %v; want good only", ids)
		}
	})
}
