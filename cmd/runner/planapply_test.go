package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/plan"
)

func weakeningPlan() plan.Plan {
	return plan.Plan{Run: "demo", Actions: []plan.Action{{Kind: plan.Update, Agent: "a", Changes: []plan.Change{
		{Attr: "send_to", Op: "~", Before: "[]", After: `["b"]`, InPlace: "the relay reloads its ACL", Weakens: `a may now message "b"`},
	}}}}
}

func deletingPlan() plan.Plan {
	return plan.Plan{Run: "demo", Actions: []plan.Action{{Kind: plan.Delete, Agent: "z", Existing: []engine.Container{{ID: "x"}}}}}
}

func harmlessPlan() plan.Plan {
	return plan.Plan{Run: "demo", Actions: []plan.Action{{Kind: plan.Create, Agent: "a"}}}
}

// Apply asks on a terminal when the plan weakens isolation or deletes an
// agent, and only "yes" goes on; -auto-approve and no terminal never ask.
func TestApproveAsksOnlyWhenItMust(t *testing.T) {
	for _, tc := range []struct {
		name   string
		p      plan.Plan
		tty    bool
		auto   bool
		answer string
		asked  bool
		ok     bool
	}{
		{"weakening, yes", weakeningPlan(), true, false, "yes\n", true, true},
		{"weakening, y is not yes", weakeningPlan(), true, false, "y\n", true, false},
		{"weakening, no", weakeningPlan(), true, false, "no\n", true, false},
		{"weakening, end of input", weakeningPlan(), true, false, "", true, false},
		{"delete, yes with spaces", deletingPlan(), true, false, "  yes  \n", true, true},
		{"delete, no", deletingPlan(), true, false, "\n", true, false},
		{"harmless plan", harmlessPlan(), true, false, "", false, true},
		{"auto-approve", weakeningPlan(), true, true, "", false, true},
		{"no terminal (CI)", weakeningPlan(), false, false, "", false, true},
		{"no terminal, delete", deletingPlan(), false, false, "", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			pr := prompter{in: strings.NewReader(tc.answer), out: &out, tty: tc.tty}
			err := approve(pr, tc.p, tc.auto)
			if asked := strings.Contains(out.String(), "Enter a value:"); asked != tc.asked {
				t.Errorf("asked = %v, want %v:\n%s", asked, tc.asked, out.String())
			}
			if (err == nil) != tc.ok {
				t.Errorf("approve = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestApprovalReasonSaysWhy(t *testing.T) {
	p := weakeningPlan()
	p.Actions = append(p.Actions, deletingPlan().Actions...)
	if got, want := approvalReason(p), "1 change weakens isolation (marked !) and 1 agent will be deleted"; got != want {
		t.Errorf("reason %q, want %q", got, want)
	}
	var out bytes.Buffer
	approve(prompter{in: strings.NewReader("no\n"), out: &out, tty: true}, p, false)
	if !strings.Contains(out.String(), "Do you want to apply this plan? 1 change weakens isolation (marked !) and 1 agent will be deleted.\n  Only 'yes' will be accepted") {
		t.Errorf("question:\n%s", out.String())
	}
}

func TestHasRunFlag(t *testing.T) {
	for args, want := range map[string]bool{
		"--run demo a":      true,
		"-run=demo":         true,
		"agents.hcl a":      false,
		"f a -- --run":      false,
		"agents.hcl --runx": false,
	} {
		if got := hasRunFlag(strings.Fields(args)); got != want {
			t.Errorf("hasRunFlag(%q) = %v", args, got)
		}
	}
}

// validate -json is Terraform's document: valid, counts, and each
// diagnostic with its range; nothing goes to stderr.
func TestValidateJSON(t *testing.T) {
	dir := t.TempDir()
	bad := dir + "/bad.hcl"
	os.WriteFile(bad, []byte("run \"demo\" {}\nagent \"a\" {\n  command = [\"true\"]\n  memory = 256\n}\n"), 0o644)
	out, stderr, code := runCLI(t, "validate", "-json", bad)
	if code != 1 || stderr != "" {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	var v validateJSON
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if v.Valid || v.ErrorCount != 1 || len(v.Diagnostics) != 1 {
		t.Fatalf("want one error: %+v", v)
	}
	d := v.Diagnostics[0]
	if d.Severity != "error" || d.Range == nil || d.Range.Filename != bad || d.Range.Start.Line != 4 || d.Range.End.Column <= d.Range.Start.Column {
		t.Errorf("diagnostic: %+v range %+v", d, d.Range)
	}

	good := dir + "/good.hcl"
	os.WriteFile(good, []byte("run \"demo\" {}\nagent \"a\" {\n  command = [\"true\"]\n}\n"), 0o644)
	out, _, code = runCLI(t, "validate", good, "-json")
	if err := json.Unmarshal([]byte(out), &v); err != nil || code != 0 || !v.Valid || v.Run != "demo" || v.Agents != 1 || v.Diagnostics == nil {
		t.Errorf("valid file: exit %d %v %+v\n%s", code, err, v, out)
	}
}

func TestHelpShowsTheRunByNameForm(t *testing.T) {
	for _, c := range []string{"status", "capture", "logs", "audit", "send", "attach", "watch", "destroy", "schedule"} {
		out, _, code := runCLI(t, c, "--help")
		if code != 0 || !strings.Contains(out, "       runner "+c+" --run NAME") {
			t.Errorf("%s --help (exit %d) lacks the --run NAME form:\n%s", c, code, out)
		}
	}
	if out, _, _ := runCLI(t, "plan", "--help"); strings.Contains(out, "--run NAME") {
		t.Errorf("plan takes a file only, but its help offers --run:\n%s", out)
	}
}
