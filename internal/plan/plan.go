// Package plan compares the desired agents of a run with the containers the
// engine reports for it and decides, per agent, what apply must do. It is
// pure: no engine calls, so every decision is unit-tested.
package plan

import (
	"fmt"
	"sort"
	"strings"

	"github.com/runner-dev/runner/internal/egress/rules"
	"github.com/runner-dev/runner/internal/engine"
)

// Kind is what happens to one agent.
type Kind string

const (
	Create  Kind = "create"
	Update  Kind = "update" // in place: the container stays (egress rules)
	Replace Kind = "replace"
	Delete  Kind = "delete"
	Keep    Kind = "keep"
)

// Desired is one agent as the config wants it.
type Desired struct {
	Agent string
	Hash  string // the runner.config-hash its container must carry
	// Sources maps each mount target to the host path its source resolves
	// to now; the container's runner.mount-sources label holds the same
	// from its creation.
	Sources map[string]string
	// Egress is the agent's egress lists (nil: none); AppliedEgress what
	// the run's rules file holds for it from the last apply (nil: none).
	Egress, AppliedEgress *rules.Entries
	// View is the agent's settings as the file wants them (nil: not
	// known, e.g. in tests of the hash logic alone); the container's
	// runner.agent-config label holds the view it was created from.
	View *View
	// InPlace is what the relay and brief should hold for the agent;
	// AppliedInPlace what the run's state holds from the last apply (nil:
	// unknown, as before the first apply: nothing is shown).
	InPlace        InPlace
	AppliedInPlace *InPlace
}

// Action is the decision for one agent.
type Action struct {
	Kind   Kind
	Agent  string
	Reason string // why: set for create, replace and delete
	// Existing are the containers this action removes (replace, delete)
	// or keeps (keep).
	Existing []engine.Container
	// Egress is how the agent's egress lists change (update, replace).
	Egress EgressChange
	// Changes are the attribute-level changes (update, replace): the
	// container's, which force the replacement, and the in-place ones
	// (relay, brief, egress).
	Changes []Change
}

// Weakening returns the action's changes that weaken isolation.
func (a Action) Weakening() []Change { return weakening(a.Changes) }

// Plan is the ordered list of actions, sorted by agent name.
type Plan struct {
	Run     string
	Actions []Action
	// Warnings are weaknesses of the configuration plan points out (a
	// "!" line each), such as an agent on network "bridge".
	Warnings []string
	// RunChanges are changes to the run block's settings (in place).
	RunChanges []Change
}

// Weakening returns every change of the plan that weakens isolation.
func (p Plan) Weakening() []Change {
	w := weakening(p.RunChanges)
	for _, a := range p.Actions {
		w = append(w, a.Weakening()...)
	}
	return w
}

// Diff decides the actions that make actual equal desired.
func Diff(run string, desired []Desired, actual []engine.Container) Plan {
	byAgent := map[string][]engine.Container{}
	for _, c := range actual {
		byAgent[c.Agent] = append(byAgent[c.Agent], c)
	}
	p := Plan{Run: run}
	want := map[string]bool{}
	for _, d := range desired {
		want[d.Agent] = true
		have := byAgent[d.Agent]
		egress := DiffEgress(d.AppliedEgress, d.Egress)
		inplace := EgressChanges(d.Agent, egress)
		if d.AppliedInPlace != nil {
			inplace = append(DiffInPlace(d.Agent, *d.AppliedInPlace, d.InPlace), inplace...)
		}
		switch {
		case len(have) == 0:
			p.Actions = append(p.Actions, Action{Kind: Create, Agent: d.Agent, Reason: "not running"})
		case len(have) > 1:
			p.Actions = append(p.Actions, Action{Kind: Replace, Agent: d.Agent, Existing: have, Changes: inplace,
				Reason: fmt.Sprintf("%d containers carry this agent's label; one is expected", len(have))})
		case have[0].ConfigHash != d.Hash:
			reason := fmt.Sprintf("configuration changed (config-hash %s -> %s)", short(have[0].ConfigHash), short(d.Hash))
			var attrs []Change
			if was, ok := DecodeView(have[0].Labels[engine.LabelAgentConfig]); ok && d.View != nil {
				attrs = DiffView(d.Agent, was, *d.View)
				if names := replacing(attrs); len(names) > 0 {
					reason = "forces replacement: " + strings.Join(names, ", ")
				} else {
					reason += "; no setting of the file changed: runner's container profile or a sensitive value did"
				}
			}
			if moved := movedSources(have[0].Labels[engine.LabelMountSources], d.Sources); moved != "" {
				reason += "; " + moved
			}
			p.Actions = append(p.Actions, Action{Kind: Replace, Agent: d.Agent, Existing: have, Reason: reason, Egress: egress,
				Changes: append(attrs, inplace...)})
		case have[0].State != "running":
			p.Actions = append(p.Actions, Action{Kind: Replace, Agent: d.Agent, Existing: have, Egress: egress, Changes: inplace,
				Reason: fmt.Sprintf("container is %s, not running", have[0].State)})
		case len(inplace) > 0:
			p.Actions = append(p.Actions, Action{Kind: Update, Agent: d.Agent, Existing: have, Egress: egress, Changes: inplace, Reason: inPlaceReason(egress, inplace)})
		default:
			p.Actions = append(p.Actions, Action{Kind: Keep, Agent: d.Agent, Existing: have})
		}
	}
	for agent, have := range byAgent {
		if !want[agent] {
			p.Actions = append(p.Actions, Action{Kind: Delete, Agent: agent, Existing: have, Reason: "no longer in the configuration"})
		}
	}
	sort.Slice(p.Actions, func(i, j int) bool { return p.Actions[i].Agent < p.Actions[j].Agent })
	return p
}

func short(h string) string {
	if h == "" {
		return "none"
	}
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// Count returns how many actions of kind k the plan holds.
func (p Plan) Count(k Kind) int {
	n := 0
	for _, a := range p.Actions {
		if a.Kind == k {
			n++
		}
	}
	return n
}

// Changes reports whether applying the plan would change anything.
func (p Plan) Changes() bool { return p.Count(Keep) != len(p.Actions) || len(p.RunChanges) > 0 }

// inPlaceReason is an update's reason: the egress change as it always was
// shown, then the other in-place changes in the same compact form.
func inPlaceReason(e EgressChange, cs []Change) string {
	var parts []string
	if !e.Empty() {
		parts = append(parts, e.String())
	}
	for _, c := range cs {
		if !strings.HasPrefix(c.Attr, "egress.") {
			parts = append(parts, c.String())
		}
	}
	return strings.Join(parts, "; ")
}

// Summary is the closing line, as Terraform prints it.
func (p Plan) Summary() string {
	if !p.Changes() {
		agents := fmt.Sprintf("%d agents", len(p.Actions))
		if len(p.Actions) == 1 {
			agents = "1 agent"
		}
		return fmt.Sprintf("No changes. Run %q matches the configuration (%s).", p.Run, agents)
	}
	s := fmt.Sprintf("Plan: %d to create, %d to update in place, %d to replace, %d to delete, %d unchanged.",
		p.Count(Create), p.Count(Update), p.Count(Replace), p.Count(Delete), p.Count(Keep))
	if n := len(p.RunChanges); n > 0 {
		s += fmt.Sprintf(" Run settings: %d to change in place.", n)
	}
	return s
}

// String renders the plan for people: one line per agent, then under an
// update or replace each attribute that changes, Terraform's way, with
// "# forces replacement" where it does, and "!" and the reason where a
// change weakens isolation.
func (p Plan) String() string {
	var b strings.Builder
	if len(p.RunChanges) > 0 {
		fmt.Fprintf(&b, "  %3s %-8s run %q\n", "~", Update, p.Run)
		writeChanges(&b, p.RunChanges, true)
	}
	for _, a := range p.Actions {
		sym := map[Kind]string{Create: "+", Update: "~", Replace: "-/+", Delete: "-", Keep: " "}[a.Kind]
		fmt.Fprintf(&b, "  %3s %-8s %s", sym, a.Kind, a.Agent)
		if a.Reason != "" {
			fmt.Fprintf(&b, "  (%s)", a.Reason)
		}
		if a.Kind == Replace && !a.Egress.Empty() {
			fmt.Fprintf(&b, "  (%s)", a.Egress)
		}
		b.WriteByte('\n')
		// An update's reason already lists its changes; under it only
		// the weakening ones are repeated, with why.
		writeChanges(&b, a.Changes, a.Kind == Replace)
	}
	if len(p.Warnings) > 0 {
		b.WriteByte('\n')
	}
	for _, w := range p.Warnings {
		fmt.Fprintf(&b, "  %3s %s\n", "!", w)
	}
	b.WriteString("\n" + p.Summary() + "\n")
	if n := len(p.Weakening()); n > 0 {
		fmt.Fprintf(&b, "%d %s weaken%s isolation (marked !).\n", n, pluralWord(n, "change"), map[bool]string{true: "s"}[n == 1])
	}
	return b.String()
}

// writeChanges prints the attribute lines of one action; all false prints
// only the weakening ones.
func writeChanges(b *strings.Builder, cs []Change, all bool) {
	for _, c := range cs {
		if !all && c.Weakens == "" {
			continue
		}
		mark := "      "
		if c.Weakens != "" {
			mark = "    ! "
		}
		line := mark + "  " + c.String()
		if c.Replace {
			line += "  # forces replacement"
		} else if c.InPlace != "" {
			line += "  # in place: " + c.InPlace
		}
		b.WriteString(line + "\n")
		if c.Weakens != "" {
			b.WriteString("          weakens isolation: " + c.Weakens + "\n")
		}
	}
}

func pluralWord(n int, w string) string {
	if n == 1 {
		return w
	}
	return w + "s"
}
