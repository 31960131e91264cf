package runner

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/egress/rules"
	"github.com/runner-dev/runner/internal/plan"
	"github.com/runner-dev/runner/internal/state"
)

func egressTestConfig(t *testing.T) *config.Config {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "agents.hcl")
	os.WriteFile(path, []byte(`run "e" { egress_default = ["api.anthropic.com"] }
agent "eng" {
  command = ["claude"]
  egress { allow = ["pypi.org"] }
}
agent "web" {
  command = ["sh"]
  network = "bridge"
}
agent "off" {
  command = ["sh"]
  egress { allow = [] }
}
`), 0o644)
	cfg, diags := config.Load(path, nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return cfg
}

func TestPlanEgressAndBridgeWarning(t *testing.T) {
	cfg := egressTestConfig(t)
	st := state.Run{Root: t.TempDir(), Name: "e"}
	want := []plan.Desired{{Agent: "eng"}, {Agent: "off"}, {Agent: "web"}}
	warnings := planEgress(cfg, st, want)
	if want[0].Egress == nil || strings.Join(want[0].Egress.Allow, ",") != "pypi.org" || want[0].AppliedEgress != nil {
		t.Errorf("eng: %+v", want[0])
	}
	if want[1].Egress != nil || want[2].Egress != nil {
		t.Errorf("off and web have no egress: %+v %+v", want[1], want[2])
	}
	if len(warnings) != 1 || !strings.HasPrefix(warnings[0], `web: network = "bridge" reaches any address directly`) {
		t.Errorf("warnings %q", warnings)
	}

	// A corrupt rules file is a warning, and apply replaces it.
	if err := st.Create(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(st.Egress(), []byte(`{"eng": {"allow": ["*"]}}`), 0o600)
	if w := planEgress(cfg, st, want); len(w) != 2 || !strings.Contains(w[0], "unreadable") {
		t.Errorf("warnings %q", w)
	}
	wrote, err := writeEgress(cfg, st)
	if err != nil || !wrote {
		t.Fatalf("writeEgress: %v %v", wrote, err)
	}
	f, err := rules.Load(st.Egress())
	if err != nil || len(f) != 1 || f["eng"].Allow[0] != "pypi.org" {
		t.Errorf("rules file %v %v", f, err)
	}
	if wrote, err := writeEgress(cfg, st); err != nil || wrote {
		t.Errorf("rewrote an unchanged rules file: %v %v", wrote, err)
	}
}
