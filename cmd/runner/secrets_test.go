package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// validate reads every secret source and reports each one that cannot be
// read at its file:line:col, without the value, before any engine is
// touched; a readable source prints nothing of its value.
func TestValidateSecretSources(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	os.WriteFile(key, []byte("sk-ant-api03-VALIDATEDVALUE\n"), 0o600)
	file := filepath.Join(dir, "agents.hcl")
	os.WriteFile(file, []byte(`run "r" {}
agent "eng" {
  command = ["claude"]
  egress { allow = ["api.anthropic.com"] }
  secret "ANTHROPIC_API_KEY" {
    from_file = "`+key+`"
    inject {
      host   = "api.anthropic.com"
      header = "x-api-key"
    }
  }
  secret "MISSING" {
    from_env = "RUNNER_TEST_NOT_SET_ANYWHERE"
    file     = "/run/secrets/missing"
  }
  secret "SLOW" {
    from_command = ["sleep", "10"]
    timeout      = "1s"
    file         = "/run/secrets/slow"
  }
  secret "FAILS" {
    from_command = ["sh", "-c", "echo denied >&2; exit 4"]
    file         = "/run/secrets/fails"
  }
}
`), 0o644)
	t.Chdir(dir)
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"validate", "agents.hcl"}, &stdout, &stderr)
	out := stderr.String()
	if !errors.As(err, new(exitError)) {
		t.Fatalf("validate with bad sources: %v\n%s", err, out)
	}
	for _, want := range []string{
		"agents.hcl:13:16", "RUNNER_TEST_NOT_SET_ANYWHERE is not set",
		"agents.hcl:17:20", "did not finish within 1s",
		"agents.hcl:22:20", "failed (exit status 4): denied",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("validate output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out+stdout.String(), "VALIDATEDVALUE") {
		t.Error("validate printed a secret value")
	}
	if i, j := strings.Index(out, "agents.hcl:13:16"), strings.Index(out, "agents.hcl:22:20"); i > j {
		t.Error("diagnostics are not in file order")
	}
}
