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
	desired := []Desired{{Agent: "alice", Hash: "h1"}, {Agent: "bob", Hash: "h2"}, {Agent: "carol", Hash: "h3"}, {Agent: "dave", Hash: "h4"}, {Agent: "erin", Hash: "h5"}}
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
	if s := p.Summary(); s != "Plan: 1 to create, 0 to update in place, 3 to replace, 2 to delete, 1 unchanged." {
		t.Errorf("summary: %q", s)
	}
}

func TestDiffNoChanges(t *testing.T) {
	p := Diff("demo", []Desired{{Agent: "a", Hash: "h"}}, []engine.Container{ctr("a", "h", "running")})
	if p.Changes() {
		t.Fatalf("expected no changes:\n%s", p)
	}
	if !strings.HasPrefix(p.Summary(), "No changes.") {
		t.Errorf("summary: %q", p.Summary())
	}
}

func TestDiffEmptyRunCreatesAll(t *testing.T) {
	p := Diff("demo", []Desired{{Agent: "a", Hash: "h"}, {Agent: "b", Hash: "h"}}, nil)
	if p.Count(Create) != 2 {
		t.Fatalf("want 2 creates:\n%s", p)
	}
}

func TestDiffNamesTheMountThatResolvesDifferently(t *testing.T) {
	old := ctr("b", "h-old", "running")
	old.Labels = map[string]string{engine.LabelMountSources: EncodeSources(map[string]string{
		"/shared": "/cfg/ws/shared", "/docs": "/cfg/docs", "/gone": "/cfg/gone",
	})}
	now := map[string]string{"/shared": "/tmp/host-etc", "/docs": "/cfg/docs", "/new": "/cfg/new"}
	p := Diff("demo", []Desired{{Agent: "b", Hash: "h-new", Sources: now}}, []engine.Container{old})
	if len(p.Actions) != 1 || p.Actions[0].Kind != Replace {
		t.Fatalf("want one replace:\n%s", p)
	}
	want := "configuration changed (config-hash h-old -> h-new); mount /shared: source now resolves to /tmp/host-etc, was /cfg/ws/shared at the last apply"
	if r := p.Actions[0].Reason; r != want {
		t.Errorf("reason:\n got %q\nwant %q", r, want)
	}
	if !strings.Contains(p.String(), "/tmp/host-etc") {
		t.Errorf("plan output does not show the new source:\n%s", p)
	}

	// A container from before the label, or with a label runner did not write.
	for _, label := range []string{"", "not json", `["a"]`} {
		c := ctr("b", "h-old", "running")
		c.Labels = map[string]string{engine.LabelMountSources: label}
		p := Diff("demo", []Desired{{Agent: "b", Hash: "h-new", Sources: now}}, []engine.Container{c})
		if r := p.Actions[0].Reason; r != "configuration changed (config-hash h-old -> h-new)" {
			t.Errorf("label %q: reason %q", label, r)
		}
	}
}

func TestSourcesLabelRoundTrip(t *testing.T) {
	in := map[string]string{"/a": "/x y/\"quoted\"", "/b": "/p\nnewline"}
	got, ok := DecodeSources(EncodeSources(in))
	if !ok || len(got) != 2 || got["/a"] != in["/a"] || got["/b"] != in["/b"] {
		t.Errorf("round trip: %v %v", got, ok)
	}
	if EncodeSources(nil) != "{}" {
		t.Errorf("no mounts: %q", EncodeSources(nil))
	}
}
