package plan

import (
	"strings"
	"testing"

	"github.com/runner-dev/runner/internal/egress/rules"
	"github.com/runner-dev/runner/internal/engine"
)

func entries(allow []string, deny ...string) *rules.Entries {
	return &rules.Entries{Allow: allow, Deny: deny}
}

// An egress change on a running container with an unchanged config hash is
// an in-place update that keeps the container; anything else about the
// container still decides create or replace.
func TestDiffEgressIsInPlace(t *testing.T) {
	desired := []Desired{
		{Agent: "changed", Hash: "h", Egress: entries([]string{"api.anthropic.com", "pypi.org"}), AppliedEgress: entries([]string{"api.anthropic.com", "x.org"})},
		{Agent: "deny", Hash: "h", Egress: entries([]string{"github.com"}, "gist.github.com"), AppliedEgress: entries([]string{"github.com"})},
		{Agent: "same", Hash: "h", Egress: entries([]string{"a.org", "b.org"}), AppliedEgress: entries([]string{"a.org", "b.org"})},
		{Agent: "reordered", Hash: "h", Egress: entries([]string{"b.org", "a.org"}), AppliedEgress: entries([]string{"a.org", "b.org"})},
		{Agent: "gained", Hash: "h", Egress: entries([]string{"a.org"})},
		{Agent: "lost", Hash: "h", AppliedEgress: entries([]string{"a.org"})},
		{Agent: "none", Hash: "h"},
		{Agent: "rebuilt", Hash: "new", Egress: entries([]string{"pypi.org"}), AppliedEgress: entries([]string{"x.org"})},
		{Agent: "fresh", Hash: "h", Egress: entries([]string{"pypi.org"})},
	}
	var actual []engine.Container
	for _, d := range desired {
		if d.Agent != "fresh" {
			actual = append(actual, ctr(d.Agent, "h", "running"))
		}
	}
	p := Diff("demo", desired, actual)
	got := map[string]Action{}
	for _, a := range p.Actions {
		got[a.Agent] = a
	}
	for agent, w := range map[string]struct {
		kind   Kind
		reason string
	}{
		"changed":   {Update, `egress.allow: + "pypi.org", - "x.org"`},
		"deny":      {Update, `egress.deny: + "gist.github.com"`},
		"same":      {Keep, ""},
		"reordered": {Keep, ""},
		"gained":    {Update, `egress.allow: + "a.org"`},
		"lost":      {Update, `egress.allow: - "a.org"`},
		"none":      {Keep, ""},
		"rebuilt":   {Replace, "configuration changed"},
		"fresh":     {Create, "not running"},
	} {
		a := got[agent]
		if a.Kind != w.kind || a.Reason != w.reason && !strings.HasPrefix(a.Reason, w.reason) {
			t.Errorf("%s: got %s (%q), want %s (%q)", agent, a.Kind, a.Reason, w.kind, w.reason)
		}
		if a.Kind == Update && (len(a.Existing) != 1 || a.Existing[0].ID != "id-"+agent+"-h") {
			t.Errorf("%s: an update must keep the container, has %v", agent, a.Existing)
		}
	}
	if !p.Changes() {
		t.Error("a plan with updates reports no changes")
	}
	out := p.String()
	for _, line := range []string{
		`    ~ update   changed  (egress.allow: + "pypi.org", - "x.org")` + "\n",
		`  -/+ replace  rebuilt  (configuration changed (config-hash h -> new))  (egress.allow: + "pypi.org", - "x.org")` + "\n",
		"Plan: 1 to create, 4 to update in place, 1 to replace, 0 to delete, 3 unchanged.\n",
	} {
		if !strings.Contains(out, line) {
			t.Errorf("plan output lacks %q:\n%s", line, out)
		}
	}
}

func TestEgressOnlyPlanIsNoOpWhenApplied(t *testing.T) {
	e := entries([]string{"api.anthropic.com"}, "x.org")
	p := Diff("demo", []Desired{{Agent: "a", Hash: "h", Egress: e, AppliedEgress: e}}, []engine.Container{ctr("a", "h", "running")})
	if p.Changes() {
		t.Errorf("re-applying the same rules changes something:\n%s", p)
	}
}

func TestEgressChangeString(t *testing.T) {
	c := DiffEgress(entries([]string{"a", "b"}, "d1"), entries([]string{"b", "c", "c"}, "d2"))
	if s := c.String(); s != `egress.allow: + "c", - "a"; egress.deny: + "d2", - "d1"` {
		t.Errorf("String() = %s", s)
	}
	if !DiffEgress(nil, nil).Empty() || !DiffEgress(nil, entries(nil)).Empty() {
		t.Error("no egress and empty lists differ")
	}
}

func TestWarningsRendered(t *testing.T) {
	p := Plan{Run: "demo", Actions: []Action{{Kind: Keep, Agent: "web"}}, Warnings: []string{`web: network = "bridge" is weaker`}}
	if out := p.String(); !strings.Contains(out, "\n    ! web: network = \"bridge\" is weaker\n") {
		t.Errorf("no warning line:\n%s", out)
	}
}
