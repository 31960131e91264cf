package config

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const topSecret = "sk-ant-api03-TOPSECRETvalue"

// TestSensitiveNeverPrinted: a sensitive variable's value, from -var,
// -var-file or RUNNER_VAR_, reaches a secret's Source.Value and nothing
// that prints: not diagnostics (with their snippets and "with var.x as"
// lines), not a formatted or JSON-encoded Config.
func TestSensitiveNeverPrinted(t *testing.T) {
	hostEnv(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "agents.hcl")
	src := `variable "key" {
  sensitive = true
}
variable "typed" {
  type      = number
  sensitive = true
}
run "r" {}
agent "eng" {
  command = ["claude"]
  egress { allow = ["api.anthropic.com"] }
  env = { X = var.key }
  secret "ANTHROPIC_API_KEY" {
    value = var.key
    inject {
      host   = "api.anthropic.com"
      header = "x-api-key"
    }
  }
}
`
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	varFile := filepath.Join(dir, "secret.vars")
	if err := os.WriteFile(varFile, []byte(fmt.Sprintf("key = %q\ntyped = %s\n", topSecret, topSecret)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		load  func(*Loader) map[string]string
		where string
	}{
		{"-var", func(l *Loader) map[string]string { return map[string]string{"key": topSecret, "typed": topSecret} }, "-var"},
		{"-var-file", func(l *Loader) map[string]string { l.VarFiles = []string{varFile}; return nil }, varFile},
		{"RUNNER_VAR_", func(l *Loader) map[string]string {
			l.Environ = []string{"RUNNER_VAR_key=" + topSecret, "RUNNER_VAR_typed=" + topSecret}
			return nil
		}, "RUNNER_VAR_typed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLoader()
			vars := tc.load(l)
			_, diags := l.Load(path, vars)
			var b strings.Builder
			WriteDiagnostics(&b, diags, l.Files(), false)
			out := b.String()
			if strings.Contains(out, "TOPSECRET") {
				t.Errorf("diagnostics show the sensitive value:\n%s", out)
			}
			for _, want := range []string{"Sensitive value outside a secret", "var.key as (sensitive value)", "Invalid value for sensitive variable"} {
				if !strings.Contains(out, want) {
					t.Errorf("diagnostics lack %q:\n%s", want, out)
				}
			}
		})
	}

	// Without the misuses, the value reaches the secret and only it.
	good := strings.Replace(src, "  env = { X = var.key }\n", "", 1)
	good = strings.Replace(good, "type      = number", "type      = string", 1)
	if err := os.WriteFile(path, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	l := NewLoader()
	l.Environ = []string{"RUNNER_VAR_key=" + topSecret, "RUNNER_VAR_typed=x"}
	cfg, diags := l.Load(path, nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	sec := cfg.Agents[0].Secrets[0]
	if got := sec.Source.Value.Reveal(); got != topSecret {
		t.Errorf("secret value = %q, want the variable's", got)
	}
	js, _ := json.Marshal(cfg.Agents)
	for _, s := range []string{fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg.Agents), fmt.Sprintf("%#v", cfg.Agents), string(js), sec.Binding()} {
		if strings.Contains(s, "TOPSECRET") {
			t.Errorf("a printed Config shows the value: %.300s", s)
		}
	}
	// -var beats -var-file beats RUNNER_VAR_, as in Terraform.
	if err := os.WriteFile(varFile, []byte(fmt.Sprintf("key = %q\n", topSecret)), 0o600); err != nil {
		t.Fatal(err)
	}
	l = NewLoader()
	l.Environ = []string{"RUNNER_VAR_key=from-env", "RUNNER_VAR_typed=x"}
	l.VarFiles = []string{varFile}
	cfg, diags = l.Load(path, map[string]string{"key": "from-cli"})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if got := cfg.Agents[0].Secrets[0].Source.Value.Reveal(); got != "from-cli" {
		t.Errorf("-var lost to another source: got %q", got)
	}
	cfg, _ = func() (*Config, any) {
		l := NewLoader()
		l.Environ = []string{"RUNNER_VAR_key=from-env", "RUNNER_VAR_typed=x"}
		l.VarFiles = []string{varFile}
		c, d := l.Load(path, nil)
		if d.HasErrors() {
			t.Fatal(d)
		}
		return c, nil
	}()
	if got := cfg.Agents[0].Secrets[0].Source.Value.Reveal(); got != topSecret {
		t.Errorf("-var-file lost to RUNNER_VAR_: got %q", got)
	}
}

func TestVarFileErrors(t *testing.T) {
	hostEnv(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "agents.hcl")
	os.WriteFile(path, []byte("variable \"n\" { type = number }\nrun \"r\" {}\nagent \"a\" { command = [\"x\"] }\n"), 0o644)
	vf := filepath.Join(dir, "v.vars")
	os.WriteFile(vf, []byte("n = \"abc\"\nextra = 1\n"), 0o644)
	l := NewLoader()
	l.VarFiles = []string{vf, filepath.Join(dir, "missing.vars")}
	_, diags := l.Load(path, nil)
	var b strings.Builder
	WriteDiagnostics(&b, diags, l.Files(), false)
	out := b.String()
	for _, want := range []string{"v.vars:1:1", "does not match the variable's type number", "v.vars:2:1", "undeclared variable", "missing.vars", "-var-file"} {
		if !strings.Contains(out, want) {
			t.Errorf("diagnostics lack %q:\n%s", want, out)
		}
	}
}
