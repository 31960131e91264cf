// Package examples holds the agents files people copy; this test keeps
// every one of them valid.
package examples

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/runner-dev/runner/internal/config"
)

func TestExamplesLoad(t *testing.T) {
	files, _ := filepath.Glob("*/*.hcl")
	if len(files) < 4 {
		t.Fatalf("expected the quickstart, team, ci and sandbox examples, found %v", files)
	}
	for _, f := range files {
		l := config.NewLoader()
		cfg, diags := l.Load(f, nil)
		if diags.HasErrors() {
			var b strings.Builder
			config.WriteDiagnostics(&b, diags, l.Files(), false)
			t.Errorf("%s:\n%s", f, b.String())
			continue
		}
		if len(cfg.Agents) == 0 {
			t.Errorf("%s: no agents", f)
		}
		// Their mount sources must pass the stage plan and apply run.
		if diags := config.CheckSources(cfg).Diagnostics(); len(diags) > 0 {
			var b strings.Builder
			config.WriteDiagnostics(&b, diags, l.Files(), false)
			t.Errorf("%s: mount sources:\n%s", f, b.String())
		}
	}
}

func TestTeamExample(t *testing.T) {
	cfg, diags := config.Load(filepath.Join("team", "agents.hcl"), map[string]string{"agent_command": `["claude"]`})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var names []string
	for _, a := range cfg.Agents {
		names = append(names, a.Name)
		if strings.Join(a.Command, " ") != "claude" {
			t.Errorf("%s: -var agent_command did not apply: %v", a.Name, a.Command)
		}
		if a.Brief == "" {
			t.Errorf("%s has no brief", a.Name)
		}
		// Its model API through the egress proxy, and nothing else.
		if a.Network != "none" || a.Egress == nil || !a.Egress.Rules.CheckName("api.anthropic.com", 443).Allowed ||
			a.Egress.Rules.CheckName("example.com", 443).Allowed {
			t.Errorf("%s: network %q, egress %+v; want network none and only the model API allowed", a.Name, a.Network, a.Egress)
		}
	}
	if strings.Join(names, ",") != "eng-1,eng-2,orchestrator,pm" {
		t.Errorf("agents: %v", names)
	}
	if got := strings.Join(cfg.Peers("pm"), ","); got != "eng-1,eng-2,orchestrator" {
		t.Errorf("pm's peers: %s", got)
	}
	if !strings.Contains(cfg.Agents[1].Brief, "You are eng-2") {
		t.Errorf("eng-2's brief: %q", cfg.Agents[1].Brief)
	}
}
