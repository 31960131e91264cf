package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runner-dev/runner/runner"
)

const egressAgents = `run "team" {
  egress_default = ["api.anthropic.com"]
}
agent "eng" {
  command = ["claude"]
  egress {
    allow = ["api.anthropic.com", "*.githubusercontent.com", "registry.npmjs.org:8443", "10.1.2.0/24:5432"]
    deny  = ["gist.githubusercontent.com"]
  }
}
agent "rev" {
  command = ["claude"]
}
agent "off" {
  command = ["sh"]
  egress {
    allow = []
  }
}
agent "web" {
  command = ["sh"]
  network = "bridge"
}
`

// runCheck runs `runner egress check` in-process and returns its output
// and exit status.
func runCheck(t *testing.T, file string, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr strings.Builder
	err := run(context.Background(), append([]string{"egress", "check", file}, args...), &stdout, &stderr)
	code := 0
	var ee exitError
	switch {
	case errors.As(err, &ee):
		code = ee.code
	case err != nil:
		t.Fatalf("egress check %q: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

func TestEgressCheck(t *testing.T) {
	t.Setenv("RUNNER_STATE_DIR", t.TempDir())
	file := filepath.Join(t.TempDir(), "agents.hcl")
	if err := os.WriteFile(file, []byte(egressAgents), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"eng", "api.anthropic.com"}, 0, `allowed: eng may reach api.anthropic.com:443: allow entry "api.anthropic.com" decides (its egress block)`},
		{[]string{"eng", "https://raw.githubusercontent.com/x/y"}, 0, `allow entry "*.githubusercontent.com" decides`},
		{[]string{"eng", "gist.githubusercontent.com"}, 1, `denied: eng may not reach gist.githubusercontent.com:443: deny entry "gist.githubusercontent.com" decides (its egress block)`},
		{[]string{"eng", "pypi.org"}, 1, "no entry of its egress block matches (denied by default)\nTo allow it, add to agent \"eng\"'s egress allow list: \"pypi.org\"\n"},
		{[]string{"eng", "registry.npmjs.org"}, 1, `"registry.npmjs.org"`},
		{[]string{"eng", "registry.npmjs.org:8443"}, 0, `allow entry "registry.npmjs.org:8443" decides`},
		{[]string{"eng", "http://10.1.2.9:5432"}, 0, `allow entry "10.1.2.0/24:5432" decides`},
		{[]string{"eng", "10.1.3.9:5432"}, 1, `"10.1.3.9:5432"`},
		{[]string{"rev", "api.anthropic.com"}, 0, `(the run's egress_default)`},
		{[]string{"rev", "pypi.org:80"}, 1, `To allow it, add "pypi.org" to egress_default, or give agent "rev" an egress block of its own.`},
		{[]string{"off", "api.anthropic.com"}, 1, `the agent has no egress`},
		{[]string{"web", "169.254.169.254:80"}, 0, `network = "bridge"`},
	} {
		out, errOut, code := runCheck(t, file, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("egress check %q: exit %d, want %d; stdout %q lacks %q (stderr %q)", tc.args, code, tc.code, out, tc.want, errOut)
		}
	}

	out, _, code := runCheck(t, file, "eng", "pypi.org:8443", "-o", "json")
	var res egressCheck
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 1 {
		t.Fatalf("json: exit %d, %v: %q", code, err, out)
	}
	if res != (egressCheck{Agent: "eng", Host: "pypi.org", Port: 8443, Source: "egress", Suggest: "pypi.org:8443"}) {
		t.Errorf("json: %+v", res)
	}
	res = egressCheck{}
	out, _, _ = runCheck(t, file, "-o", "json", "eng", "gist.githubusercontent.com")
	json.Unmarshal([]byte(out), &res)
	if res.Allowed || !res.Deny || res.Rule != "gist.githubusercontent.com" || res.Suggest != "" {
		t.Errorf("json for a denied entry: %+v", res)
	}
}

// Trouble is exit 2, never 1: a script reading 1 as "denied" must not take
// a typo for an answer.
func TestEgressCheckTrouble(t *testing.T) {
	t.Setenv("RUNNER_STATE_DIR", t.TempDir())
	dir := t.TempDir()
	good := filepath.Join(dir, "agents.hcl")
	os.WriteFile(good, []byte(egressAgents), 0o644)
	bad := filepath.Join(dir, "bad.hcl")
	os.WriteFile(bad, []byte(`run "r" {}
agent "a" {
  command = ["x"]
  egress { allow = ["*"] }
}
`), 0o644)
	for _, tc := range []struct {
		file string
		args []string
		want string
	}{
		{good, []string{"nobody", "x.org"}, `no agent "nobody" in agents.hcl; its agents are: eng, off, rev, web`},
		{good, []string{"enh", "x.org"}, `no agent "enh" in agents.hcl; did you mean "eng"?`},
		{good, []string{"eng", "ftp://x.org"}, "the proxy carries http and https"},
		{good, []string{"eng", "x.org:0"}, "out of range"},
		{good, []string{"eng", "*.x.org"}, "neither a host name nor an IP address"},
		{good, []string{"eng", "x.org", "-o", "yaml"}, `-o "yaml"`},
		{good, []string{"eng"}, "Usage: runner egress check FILE AGENT HOST[:PORT]|URL"},
		{bad, []string{"a", "x.org"}, "bad.hcl:4:21"},
		{filepath.Join(dir, "missing.hcl"), []string{"a", "x.org"}, "missing.hcl"},
	} {
		out, errOut, code := runCheck(t, tc.file, tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) || out != "" {
			t.Errorf("egress check %s %q: exit %d, stdout %q, stderr %q; want exit 2 and %q", filepath.Base(tc.file), tc.args, code, out, errOut, tc.want)
		}
	}
	var stdout, stderr strings.Builder
	if err := run(context.Background(), []string{"egress"}, &stdout, &stderr); !errors.As(err, new(exitError)) || !strings.Contains(stderr.String(), "Usage: runner egress FILE [AGENT]") || !strings.Contains(stderr.String(), "runner egress check FILE") {
		t.Errorf("bare egress: %v %q", err, stderr.String())
	}
}

func TestWriteEgressReport(t *testing.T) {
	rep := runner.EgressReport{Run: "team", Agents: []runner.EgressAgent{
		{Agent: "eng", Source: "egress", Rules: 3, Allowed: 12, Denied: 2, BytesUp: 2048, BytesDown: 3 << 20, Destinations: []runner.EgressDest{
			{Host: "github.com", Port: 443, Allowed: 12, BytesUp: 2048, BytesDown: 3 << 20},
			{Host: "pypi.org", Port: 443, Denied: 2, Reason: "runner egress: CONNECT pypi.org:443 refused", Entry: "pypi.org",
				Where: `agent "eng"'s egress block`, Line: `allow = ["github.com", "pypi.org"]`},
		}},
		{Agent: "ops", Source: "none"},
	}}
	var b strings.Builder
	writeEgressReport(&b, rep)
	for _, want := range []string{
		"eng: 3 rules, 12 allowed, 2 denied, 2.0 KiB up, 3.0 MiB down\n",
		"github.com:443", "pypi.org:443",
		"  denied pypi.org:443: runner egress: CONNECT pypi.org:443 refused\n    to allow it, in agent \"eng\"'s egress block:\n      allow = [\"github.com\", \"pypi.org\"]\n",
		"ops: no egress",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}

// Without an audit log (never applied here), the report says so per
// agent; an unknown agent is named like every command names it.
func TestEgressReportCommand(t *testing.T) {
	t.Setenv("RUNNER_STATE_DIR", t.TempDir())
	file := filepath.Join(t.TempDir(), "agents.hcl")
	if err := os.WriteFile(file, []byte(egressAgents), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr strings.Builder
	if err := run(context.Background(), []string{"egress", file, "eng"}, &stdout, &stderr); err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "eng: ") || !strings.Contains(stdout.String(), "0 allowed, 0 denied") || !strings.Contains(stdout.String(), "no connections recorded") {
		t.Errorf("report: %q", stdout.String())
	}
	stdout.Reset()
	if err := run(context.Background(), []string{"egress", file, "-o", "json"}, &stdout, &stderr); err != nil || !strings.Contains(stdout.String(), `"agent": "rev"`) {
		t.Errorf("json: %v %q", err, stdout.String())
	}
	stderr.Reset()
	if err := run(context.Background(), []string{"egress", file, "nobody"}, &stdout, &stderr); err == nil {
		t.Error("an unknown agent was accepted")
	}
}
