package main

import (
	"context"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
)

// runCLI runs the CLI in-process and returns stdout, stderr and the exit
// status main would use.
func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb strings.Builder
	err := run(context.Background(), args, &out, &errb)
	code := 0
	if ee, ok := err.(exitError); ok {
		code = ee.code
	} else if err != nil {
		errb.WriteString("Error: " + err.Error() + "\n")
		code = 1
	}
	return out.String(), errb.String(), code
}

func TestTopLevelHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"-help"}} {
		out, errOut, code := runCLI(t, args...)
		if code != 0 || errOut != "" {
			t.Errorf("%v: exit %d, stderr %q; want 0 and nothing", args, code, errOut)
		}
		if !strings.HasPrefix(out, "Usage: runner [global flags] COMMAND") {
			t.Errorf("%v: stdout does not start with the usage:\n%s", args, out)
		}
		for _, c := range commands {
			listed := strings.Contains(out, "\n  "+c.name+" ")
			if listed == c.hidden {
				t.Errorf("%v: command %q listed=%v, hidden=%v", args, c.name, listed, c.hidden)
			}
		}
		for _, internal := range []string{"serve", "\n  relay ", "\n  record ", "__complete"} {
			if strings.Contains(out, internal) {
				t.Errorf("%v: the help advertises the internal %q", args, internal)
			}
		}
		// Global flags once, here.
		if strings.Count(out, "--log-level") != 1 || strings.Count(out, "-var NAME=VALUE") != 1 {
			t.Errorf("%v: the global flags are not listed exactly once:\n%s", args, out)
		}
	}
	// No command at all is a usage mistake: the usage on stderr, 2.
	out, errOut, code := runCLI(t)
	if code != 2 || out != "" || !strings.Contains(errOut, "Usage: runner") {
		t.Errorf("no command: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// Every advertised command answers --help (and help COMMAND) on stdout with
// status 0: a description, its arguments, its own flags with defaults, an
// example, and none of the global flags.
func TestCommandHelp(t *testing.T) {
	for _, c := range commands {
		if c.hidden {
			continue
		}
		for _, args := range [][]string{{c.name, "--help"}, {c.name, "-h"}, {"help", c.name}} {
			out, errOut, code := runCLI(t, args...)
			if code != 0 || errOut != "" {
				t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
				continue
			}
			if !strings.HasPrefix(out, "Usage: runner "+c.name) {
				t.Errorf("%v: no usage line:\n%s", args, out)
			}
			if c.args != "" && !strings.Contains(out, strings.Split(c.args, " -- ")[0]) {
				t.Errorf("%v: the arguments %q are not shown:\n%s", args, c.args, out)
			}
			if c.summary == "" || !strings.Contains(strings.ToLower(out), strings.ToLower(c.summary)) {
				t.Errorf("%v: no description:\n%s", args, out)
			}
			if c.example == "" || !strings.Contains(out, "Example:\n  "+c.example+"\n") {
				t.Errorf("%v: no example:\n%s", args, out)
			}
			if strings.Contains(out, "--log-level ") || strings.Contains(out, "  -var") {
				t.Errorf("%v: global flags listed under the command:\n%s", args, out)
			}
		}
	}
	out, _, _ := runCLI(t, "status", "--help")
	if !regexp.MustCompile(`\n  -o VALUE +output format: table, wide \(adds image and limits\) or json \(default table\)\n`).MatchString(out) {
		t.Errorf("status --help does not show -o with its default:\n%s", out)
	}
	out, _, _ = runCLI(t, "run", "--help")
	if !strings.Contains(out, "--timeout DURATION") || !strings.Contains(out, "(default 30m0s)") {
		t.Errorf("run --help does not show --timeout with its default:\n%s", out)
	}
	out, _, _ = runCLI(t, "exec", "--help")
	if !strings.HasPrefix(out, "Usage: runner exec FILE AGENT [flags] -- ARGV...\n") {
		t.Errorf("exec's flags go before --:\n%s", out)
	}
}

func TestUsageMistakes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"stauts", "x.hcl"}, `unknown command "stauts"; did you mean "status"?`},
		{[]string{"help", "atach"}, `no command "atach"; did you mean "attach"?`},
		{[]string{"help", "services"}, `no command "services"`}, // internal: not helped
		{[]string{"capture", "x.hcl"}, "Usage: runner capture FILE AGENT [flags]   (more: runner help capture)"},
		{[]string{"status", "--nope", "x.hcl"}, "flag provided but not defined: -nope\nUsage: runner status FILE [flags]"},
		{[]string{"completion", "tcsh"}, `no completion for shell "tcsh"; use bash, zsh or fish`},
	} {
		out, errOut, code := runCLI(t, tc.args...)
		if code != 2 || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2 and %q", tc.args, code, out, errOut, tc.want)
		}
		if strings.Count(errOut, "\n") > 3 {
			t.Errorf("%v: a mistake gets a short answer, not the whole help:\n%s", tc.args, errOut)
		}
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}, {"-v"}} {
		out, errOut, code := runCLI(t, args...)
		if code != 0 || errOut != "" || !strings.HasPrefix(out, "runner ") || !strings.Contains(out, "go1.") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
	info := &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: "v1.2.3"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"}}}
	if got := buildVersion(info, true); !strings.HasPrefix(got, "runner v1.2.3 (commit 0123456789ab, with local changes)\ngo1.99.1 ") {
		t.Errorf("from the build info: %q", got)
	}
	version, commit = "v2.0.0", "fedcba9876543210-dirty"
	defer func() { version, commit = "", "" }()
	if got := buildVersion(&debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: "(devel)"}}, true); !strings.HasPrefix(got, "runner v2.0.0 (commit fedcba987654, with local changes)\n") {
		t.Errorf("from -ldflags: %q", got)
	}
	version, commit = "", ""
	if got := buildVersion(nil, false); !strings.HasPrefix(got, "runner dev\n") {
		t.Errorf("without build info: %q", got)
	}
}
