package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Without a terminal, attach says what to use instead and prints nothing
// on stdout (no escape codes into a pipe or a file); a wrong agent name is
// caught first, with the nearest name, before anything says "Attached".
// Neither needs the engine: DOCKER_HOST points nowhere.
func TestAttachRefusesWithoutATerminal(t *testing.T) {
	env, bin := cliOnPath(t)
	env = append(env, "DOCKER_HOST=unix:///nonexistent/docker.sock")
	dir := t.TempDir()
	path := filepath.Join(dir, "agents.hcl")
	os.WriteFile(path, []byte(completionConfig), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"attach", path, "alice"}, "runner attach needs a terminal on standard input"},
		{[]string{"attach", path, "alise"}, `no agent "alise" in agents.hcl; did you mean "alice"?`},
		{[]string{"attach", path, "nope"}, `no agent "nope" in agents.hcl; its agents are: alan, alice, eng-1, eng-2`},
		{[]string{"shell", path, "alice"}, "runner shell needs a terminal; to run one command, use `runner exec "},
		{[]string{"exec", path, "eng-3", "--", "id"}, `no agent "eng-3" in agents.hcl; did you mean "eng-1"?`},
		{[]string{"capture", path, "alcie"}, `did you mean "alice"?`},
	} {
		cmd := exec.Command(bin, tc.args...)
		cmd.Env = env
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdin = f
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err = cmd.Run()
		f.Close()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Errorf("%v: %v, want exit status 1", tc.args, err)
		}
		if out.Len() != 0 {
			t.Errorf("%v: printed on stdout: %q", tc.args, out.String())
		}
		if !strings.Contains(errb.String(), tc.want) || strings.Contains(errb.String(), "Attached") {
			t.Errorf("%v: stderr %q, want %q and no \"Attached\"", tc.args, errb.String(), tc.want)
		}
		if strings.Count(errb.String(), "\n") != 1 {
			t.Errorf("%v: one line of error, got %q", tc.args, errb.String())
		}
	}
}

func TestWatchAttachHintNamesTheSocket(t *testing.T) {
	if got := watchAttachHint("", "runner-watch-demo"); got != "tmux attach -t runner-watch-demo" {
		t.Errorf("outside tmux: %q", got)
	}
	if got := watchAttachHint("/tmp/tmux-1000/work,4242,0", "runner-watch-demo"); got != "tmux -S /tmp/tmux-1000/work attach -t runner-watch-demo" {
		t.Errorf("inside tmux -L work: %q", got)
	}
}
