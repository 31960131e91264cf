package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestMain lets this test binary be `runner` for the shell tests: a copy
// on PATH with RUNNER_TEST_AS_CLI=1 runs main.
func TestMain(m *testing.M) {
	if os.Getenv("RUNNER_TEST_AS_CLI") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// cliOnPath puts this binary on PATH as runner, and returns that
// environment and the path of runner.
func cliOnPath(t *testing.T) ([]string, string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(self, filepath.Join(dir, "runner")); err != nil {
		t.Fatal(err)
	}
	return append(os.Environ(), "RUNNER_TEST_AS_CLI=1", "PATH="+dir+":"+os.Getenv("PATH")), filepath.Join(dir, "runner")
}

const completionConfig = `run "team" {}
agent "alice" { command = ["true"] }
agent "alan" { command = ["true"] }
agent "eng" {
  count   = 2
  command = ["true"]
}
`

func TestCompletionScripts(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		out, errOut, code := runCLI(t, "completion", sh)
		if code != 0 || errOut != "" || !strings.Contains(out, "runner __complete -- ") {
			t.Errorf("completion %s: exit %d, %q", sh, code, errOut)
		}
		bin, err := exec.LookPath(sh)
		if err != nil {
			if sh == "bash" {
				t.Fatal("bash is needed for this test")
			}
			continue // zsh and fish are checked where they are installed
		}
		// The script parses.
		cmd := exec.Command(bin, "-n")
		if sh == "fish" {
			cmd = exec.Command(bin, "--no-execute")
		}
		cmd.Stdin = strings.NewReader(out)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s -n on the %s script: %v\n%s", sh, sh, err, b)
		}
	}
}

// A real completion in bash: the script is sourced, COMP_WORDS and
// COMP_CWORD are set as bash sets them, and COMPREPLY is what a user sees.
func TestBashCompletion(t *testing.T) {
	env, _ := cliOnPath(t)
	dir := t.TempDir()
	script, _, _ := runCLI(t, "completion", "bash")
	scriptPath := filepath.Join(dir, "runner.bash")
	os.WriteFile(scriptPath, []byte(script), 0o644)
	os.WriteFile(filepath.Join(dir, "agents.hcl"), []byte(completionConfig), 0o644)
	os.WriteFile(filepath.Join(dir, "unloadable.hcl"), []byte("run \"r\" {}\nagent \"bob\" {\n  command = [var.cmd]\n}\nagent \"eve\" {\n  brief = file(\"nope.md\")\n}\nagent \"Bad Name\" {}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o644)
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)

	complete := func(words ...string) []string {
		t.Helper()
		// Words are passed as arguments, never spliced into the script.
		src := `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); _runner; printf '%s\n' "${COMPREPLY[@]}"`
		cmd := exec.Command("bash", append([]string{"-c", src, "bash", scriptPath}, words...)...)
		cmd.Env, cmd.Dir = env, dir
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("completing %q: %v\n%s", words, err, b)
		}
		got := strings.Fields(string(b))
		slices.Sort(got)
		return got
	}
	for _, tc := range []struct {
		words []string
		want  []string
	}{
		{[]string{"runner", ""}, visibleSorted()},
		{[]string{"runner", "st"}, []string{"status"}},
		{[]string{"runner", "--log-level", "debug", "ca"}, []string{"capture"}},
		{[]string{"runner", "capture", ""}, []string{"agents.hcl", "sub", "unloadable.hcl"}}, // .hcl files and directories
		{[]string{"runner", "capture", "agents.hcl", ""}, []string{"alan", "alice", "eng-1", "eng-2"}},
		{[]string{"runner", "exec", "agents.hcl", "al"}, []string{"alan", "alice"}},
		{[]string{"runner", "capture", "agents.hcl", "--lines", "5", "e"}, []string{"eng-1", "eng-2"}},
		{[]string{"runner", "capture", "agents.hcl", "--"}, []string{"--help", "--lines", "--log-json", "--log-level", "--raw", "--run"}},
		{[]string{"runner", "status", "-"}, []string{"--help", "--json", "--log-json", "--log-level", "--run", "-o", "-var", "-var-file"}},
		{[]string{"runner", "exec", "agents.hcl", "alice", ""}, []string{"--"}},
		{[]string{"runner", "exec", "agents.hcl", "alice", "--"}, []string{"--", "--help", "--log-json", "--log-level"}},
		{[]string{"runner", "exec", "agents.hcl", "alice", "--", ""}, []string{"agents.hcl", "notes.txt", "runner.bash", "sub", "unloadable.hcl"}}, // the command's own: any file
		{[]string{"runner", "send", "agents.hcl", "alice", ""}, nil},                                                                               // MESSAGE
		{[]string{"runner", "completion", ""}, []string{"bash", "fish", "zsh"}},
		{[]string{"runner", "help", "wa"}, []string{"watch"}},
		{[]string{"runner", "image", ""}, []string{"build"}},
		{[]string{"runner", "egress", ""}, []string{"check"}},
		{[]string{"runner", "egress", "check", "agents.hcl", "ali"}, []string{"alice"}},
		{[]string{"runner", "egress", "check", "agents.hcl", "alice", ""}, nil},
		{[]string{"runner", "egress", "check", "agents.hcl", "-"}, []string{"--help", "--log-json", "--log-level", "-o", "-var", "-var-file"}},
		{[]string{"runner", "services", ""}, nil}, // internal: nothing offered
		{[]string{"runner", "capture", "missing.hcl", ""}, nil},
		// A file that does not load yet still offers its agent blocks.
		{[]string{"runner", "attach", "unloadable.hcl", ""}, []string{"bob", "eve"}},
	} {
		if got := complete(tc.words...); !slices.Equal(got, tc.want) {
			t.Errorf("completing %q: got %q, want %q", tc.words, got, tc.want)
		}
	}
}

func visibleSorted() []string {
	v := visibleCommands()
	slices.Sort(v)
	return v
}

// Agent names come from the file alone: with DOCKER_HOST pointing nowhere,
// completion still answers, and nothing else is printed.
func TestCompleteNeverTouchesTheEngine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agents.hcl")
	os.WriteFile(path, []byte(completionConfig), 0o644)
	t.Setenv("DOCKER_HOST", "tcp://192.0.2.1:9") // TEST-NET: any dial would hang
	out, errOut, code := runCLI(t, "__complete", "--", "attach", path, "eng")
	if code != 0 || errOut != "" || out != "eng-1\neng-2\n" {
		t.Errorf("__complete: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// zsh and fish, where installed: the same questions through their scripts.
// zsh's completion builtins only exist inside its completion system, so
// compadd and _files are stand-ins that print what they were given.
func TestZshAndFishCompletion(t *testing.T) {
	env, _ := cliOnPath(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "agents.hcl"), []byte(completionConfig), 0o644)
	for _, sh := range []string{"zsh", "fish"} {
		if _, err := exec.LookPath(sh); err != nil {
			t.Logf("%s is not installed: its script is not exercised", sh)
			continue
		}
		script, _, _ := runCLI(t, "completion", sh)
		scriptPath := filepath.Join(dir, "runner."+sh)
		os.WriteFile(scriptPath, []byte(script), 0o644)
		complete := func(words ...string) []string {
			t.Helper()
			var cmd *exec.Cmd
			if sh == "zsh" {
				src := `compdef() {}; compadd() { [[ $1 == -a ]] && print -l -- "${(@P)2}" }; _files() { print -- "FILES $*" }
source "$1"; shift; words=("$@"); CURRENT=$#; _runner`
				cmd = exec.Command("zsh", append([]string{"-f", "-c", src, "zsh", scriptPath}, words...)...)
			} else {
				// complete -C completes a command line as typed.
				cmd = exec.Command("fish", "--no-config", "-c", `source $argv[1]; complete -C $argv[2]`, scriptPath, strings.Join(words, " "))
			}
			cmd.Env, cmd.Dir = env, dir
			b, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s completing %q: %v\n%s", sh, words, err, b)
			}
			var got []string
			for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				if l != "" {
					got = append(got, strings.Fields(l)[0])
				}
			}
			slices.Sort(got)
			return got
		}
		agents := complete("runner", "capture", "agents.hcl", "")
		if !slices.Equal(agents, []string{"alan", "alice", "eng-1", "eng-2"}) {
			t.Errorf("%s: agents: %q", sh, agents)
		}
		if got := complete("runner", "sta"); !slices.Equal(got, []string{"status"}) {
			t.Errorf("%s: commands: %q", sh, got)
		}
		files := complete("runner", "plan", "")
		if sh == "zsh" && !slices.Equal(files, []string{"FILES"}) {
			t.Errorf("zsh: files: %q", files)
		}
		if sh == "fish" && !slices.Contains(files, "agents.hcl") {
			t.Errorf("fish: files: %q", files)
		}
	}
}
