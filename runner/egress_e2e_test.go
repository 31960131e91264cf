package runner_test

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/runner-dev/runner/internal/egress/rules"
	"github.com/runner-dev/runner/internal/plan"
	"github.com/runner-dev/runner/internal/state"
)

func egressConfig(run string, te *testEngine, allow string) string {
	return fmt.Sprintf(`run %q {
  %s
  egress_default = ["api.anthropic.com"]
}
agent "eng" {
  image   = %q
  command = ["sleep", "3600"]
  memory  = "64MiB"
  pids    = 64
  egress {
    allow = %s
    deny  = ["gist.githubusercontent.com"]
  }
}
agent "rev" {
  image   = %q
  command = ["sleep", "3600"]
  memory  = "64MiB"
  pids    = 64
}
`, run, te.accept, testImage, allow, testImage)
}

// A change to an agent's egress rules is an in-place update: plan shows
// "~ update", apply rewrites the run's rules file and keeps the container
// (same ID, same config hash), and the change is audited.
func TestEgressRulesUpdateInPlace(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		run := runName(t, te, "egress")
		destroyAtEnd(t, te, run)
		cfg, path := writeConfig(t, egressConfig(run, te, `["api.anthropic.com", "x.org"]`))
		r := newRunner(te)
		if _, err := r.Apply(ctx(t), cfg); err != nil {
			t.Fatal(err)
		}
		st, err := state.ForRun(run)
		if err != nil {
			t.Fatal(err)
		}
		checkRulesFile(t, st, rules.File{
			"eng": {Allow: []string{"api.anthropic.com", "x.org"}, Deny: []string{"gist.githubusercontent.com"}},
			"rev": {Allow: []string{"api.anthropic.com"}, Deny: []string{}},
		})
		before := containerIDs(t, te, run)
		hashes := configHashes(t, te, run)

		os.WriteFile(path, []byte(egressConfig(run, te, `["api.anthropic.com", "pypi.org"]`)), 0o644)
		cfg = load(t, path)
		p, err := r.Plan(ctx(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if p.Count(plan.Update) != 1 || p.Count(plan.Keep) != 1 || p.Count(plan.Replace) != 0 {
			t.Fatalf("plan after changing eng's allow list:\n%s", p)
		}
		if want := `    ~ update   eng  (egress.allow: + "pypi.org", - "x.org")` + "\n"; !strings.Contains(p.String(), want) {
			t.Errorf("plan lacks %q:\n%s", want, p)
		}
		res, err := r.Apply(ctx(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if res.IDs["eng"] != before["eng"] {
			t.Errorf("apply reports eng as %s, was %s", res.IDs["eng"], before["eng"])
		}
		if after := containerIDs(t, te, run); !reflect.DeepEqual(after, before) {
			t.Errorf("an egress change replaced a container: %v -> %v", before, after)
		}
		if after := configHashes(t, te, run); !reflect.DeepEqual(after, hashes) {
			t.Errorf("an egress change moved a config hash: %v -> %v", hashes, after)
		}
		checkRulesFile(t, st, rules.File{
			"eng": {Allow: []string{"api.anthropic.com", "pypi.org"}, Deny: []string{"gist.githubusercontent.com"}},
			"rev": {Allow: []string{"api.anthropic.com"}, Deny: []string{}},
		})
		log, err := os.ReadFile(st.Audit())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(log), `"egress_update"`) || !strings.Contains(string(log), `pypi.org`) {
			t.Errorf("the egress update is not in the audit log:\n%s", log)
		}

		// Applied, the same file is a no-op.
		if p, err := r.Plan(ctx(t), cfg); err != nil || p.Changes() {
			t.Errorf("plan after apply: %v\n%s", err, p)
		}
	})
}

func checkRulesFile(t *testing.T, st state.Run, want rules.File) {
	t.Helper()
	fi, err := os.Stat(st.Egress())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", st.Egress(), fi.Mode().Perm())
	}
	got, err := rules.Load(st.Egress())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rules file %v, want %v", got, want)
	}
}

func configHashes(t *testing.T, te *testEngine, run string) map[string]string {
	t.Helper()
	list, err := te.eng.List(ctx(t), run)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range list {
		out[c.Agent] = c.ConfigHash
	}
	return out
}
