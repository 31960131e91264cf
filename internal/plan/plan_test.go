package plan

import (
	"strings"
	"testing"

	"github.com/runner-dev/runner/internal/engine"
)

func ctr(agent, hash, state string) engine.Container {
	return engine.Container{ID: "id-" + agent + "-" + hash, Agent: agent, ConfigHash: hash, State: state}
}

func TestDiff(t *testing.T) {
	desired := []Desired{{"alice", "h1"}, {"bob", "h2"}, {"carol", "h3"}, {"dave", "h4"}, {"erin", "h5"}}
	actual := []engine.Container{
		ctr("alice", "h1", "running"),    // keep
		ctr("bob", "old", "running"),     // replace: changed
		ctr("dave", "h4", "exited"),      // replace: not running
		ctr("erin", "h5", "running"),     // replace: duplicate
		ctr("erin", "h5", "running"),     //
		ctr("zed", "hz", "running"),      // delete
		ctr("carol-old", "h", "created"), // delete
	}
	p := Diff("demo", desired, actual)
	got := map[string]Action{}
	for _, a := range p.Actions {
		got[a.Agent] = a
	}
	want := map[string]struct {
		kind   Kind
		reason string
	}{
		"alice":     {Keep, ""},
		"bob":       {Replace, "configuration changed"},
		"carol":     {Create, "not running"},
		"dave":      {Replace, "container is exited"},
		"erin":      {Replace, "2 containers"},
		"zed":       {Delete, "no longer in the configuration"},
		"carol-old": {Delete, "no longer in the configuration"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d actions, want %d:\n%s", len(got), len(want), p)
	}
	for agent, w := range want {
		a, ok := got[agent]
		if !ok {
			t.Errorf("%s: no action", agent)
			continue
		}
		if a.Kind != w.kind || !strings.Contains(a.Reason, w.reason) {
			t.Errorf("%s: got %s (%q), want %s (%q)", agent, a.Kind, a.Reason, w.kind, w.reason)
		}
	}
	if n := len(got["erin"].Existing); n != 2 {
		t.Errorf("erin: replace must remove both duplicates, removes %d", n)
	}
	for i := 1; i < len(p.Actions); i++ {
		if p.Actions[i-1].Agent > p.Actions[i].Agent {
			t.Errorf("actions not sorted: %s before %s", p.Actions[i-1].Agent, p.Actions[i].Agent)
		}
	}
	if !p.Changes() {
		t.Error("Changes() = false for a plan with changes")
	}
	if s := p.Summary(); s != "Plan: 1 to create, 3 to replace, 2 to delete, 1 unchanged." {
		t.Errorf("summary: %q", s)
	}
}

func TestDiffNoChanges(t *testing.T) {
	p := Diff("demo", []Desired{{"a", "h"}}, []engine.Container{ctr("a", "h", "running")})
	if p.Changes() {
		t.Fatalf("expected no changes:\n%s", p)
	}
	if !strings.HasPrefix(p.Summary(), "No changes.") {
		t.Errorf("summary: %q", p.Summary())
	}
}

func TestDiffEmptyRunCreatesAll(t *testing.T) {
	p := Diff("demo", []Desired{{"a", "h"}, {"b", "h"}}, nil)
	if p.Count(Create) != 2 {
		t.Fatalf("want 2 creates:\n%s", p)
	}
}
