package runner_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/termsafe"
)

// payload is what a hostile agent prints at the operator, as a printf(1)
// format: OSC 52 clipboard write, titles, an OSC 8 link, DCS, APC, 8-bit
// and UTF-8 C1 CSI, queries (DSR, DA, window ops), mouse reporting, and
// tmux passthrough of another clipboard write.
const payload = `\033]52;c;cm0gLXJmIH4=\007\033]0;FORGED-TITLE\007\033]2;FORGED-TITLE\033\\` +
	`\033]8;;https://evil.example/\033\\LINK\033]8;;\033\\\033P+q544e\033\\\033_FORGED-APC\033\\` +
	`\2336n\302\2336n\033[6n\033[c\033[18t\033[?1000h\033[?1004h` +
	`\033Ptmux;\033\033]52;c;cGFzc3Q=\007\033\\`

// secrets appear only inside the payload's sequences: seeing one means a
// sequence got through (or its insides did). (Titles are no secret: the
// agent's tmux shows its pane title, APC included, as text in its status
// line.)
var secrets = []string{"cm0gLXJmIH4=", "cGFzc3Q=", "evil.example", "544e"}

// evilScript opens everything its own tmux server allows, retitles its
// pane, then prints the payload (from $P: runner-agent shows the command
// line in the pane, and the secrets must not be in it) and a marker, again
// and again.
const evilScript = `sleep 1; tmux set -g allow-passthrough on; tmux set -s set-clipboard on; ` +
	`tmux set -g set-titles on; tmux set -g set-titles-string FORGED-TITLE; tmux select-pane -T FORGED-TITLE; ` +
	`tmux set -p @runner_agent FORGED-LABEL; while :; do printf "$P"; echo EVIL-MARKER; sleep 0.5; done`

// plainSafe checks text meant for a terminal that must carry no escape at
// all: printable UTF-8, \n, \t (and \r), nothing of the payload's insides.
func plainSafe(t *testing.T, what string, b []byte) {
	t.Helper()
	if !utf8.Valid(b) {
		t.Errorf("%s: invalid UTF-8: %q", what, b)
	}
	for _, r := range string(b) {
		if (r < 0x20 && r != '\n' && r != '\t' && r != '\r') || r == 0x7f || (r >= 0x80 && r <= 0x9f) {
			t.Errorf("%s: holds %U, it must be plain text: %q", what, r, b)
			break
		}
	}
	noSecrets(t, what, b)
}

// viewSafe checks what reached the operator's terminal from a live view:
// only sequences termsafe.View passes, no C1, no string sequence.
func viewSafe(t *testing.T, what string, b []byte) {
	t.Helper()
	if !utf8.Valid(b) {
		t.Errorf("%s: invalid UTF-8", what)
	}
	for _, r := range string(b) {
		if r >= 0x80 && r <= 0x9f || r == 0x07 {
			t.Errorf("%s: holds %U: %q", what, r, b)
			break
		}
	}
	for _, bad := range []string{"\x1b]", "\x1bP", "\x1b_", "\x1b^", "\x1bX", "\x1b[6n", "\x1b[c", "\x1b[18t", "\x1b[?1000h", "\x1b[?1004h"} {
		if bytes.Contains(b, []byte(bad)) {
			t.Errorf("%s: the operator's terminal received %q: %q", what, bad, b)
		}
	}
	var v termsafe.View
	if again := v.Filter(nil, b); !bytes.Equal(again, b) {
		t.Errorf("%s: the terminal received sequences a view does not pass: %q", what, b)
	}
	noSecrets(t, what, b)
}

func noSecrets(t *testing.T, what string, b []byte) {
	t.Helper()
	for _, s := range secrets {
		if bytes.Contains(b, []byte(s)) {
			t.Errorf("%s: %q (inside an escape sequence) reached the operator: %q", what, s, b)
		}
	}
}

// cli runs the runner CLI as the operator would, without a terminal.
func cli(te *testEngine, args ...string) (stdout, stderr []byte, err error) {
	cmd := exec.Command(filepath.Join(bins, "runner"), args...)
	cmd.Env = append(os.Environ(), dockerHostEnv(te)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.Bytes(), e.Bytes(), err
}

// hijack runs, as the agent's uid, a probe that waits for a runner-agent
// helper, stops it, writes into its stdout and stderr through /proc/PID/fd
// and kills it or lets it go on; then tells what it managed.
func hijack(t *testing.T, te *testEngine, id, match, stdout, stderr, then string) <-chan map[string]string {
	ch := make(chan map[string]string, 1)
	go func() {
		res, err := te.eng.Exec(ctx(t), id, "", []string{"/probe/testprobe", "hijack", match, stdout, stderr, then})
		out := map[string]string{}
		if err != nil {
			out["error"] = err.Error()
		} else if err := json.Unmarshal([]byte(res.Stdout), &out); err != nil {
			out["error"] = fmt.Sprintf("probe output %q: %v", res.Stdout, err)
		}
		ch <- out
	}()
	return ch
}

// TestEscapesNeverReachTheOperator: an agent that prints escape payloads,
// opens its tmux server's passthrough, clipboard and titles, and writes
// into the helpers the operator's commands run, reaches the operator's
// terminal through no command.
func TestEscapesNeverReachTheOperator(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		run := runName(t, te, "esc")
		destroyAtEnd(t, te, run)
		cfg, path := writeConfig(t, fmt.Sprintf(`
run %q {
  %s
}
agent "evil" {
  image   = %q
  command = ["sh", "-c", %q]
  env     = { P = %q }
  mount {
    source = %q
    target = "/probe"
  }
}
`, run, te.accept, testImage, evilScript, payload, bins))
		r := newRunner(te)
		res, err := r.Apply(ctx(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		id := res.IDs["evil"]
		waitPane(t, r, cfg, "evil", "EVIL-MARKER")

		t.Run("attach", func(t *testing.T) {
			p := startPTY(t, dockerHostEnv(te), filepath.Join(bins, "runner"), "attach", path, "evil")
			// Several rounds of the payload while attached.
			got := p.waitFor("EVIL-MARKER", 6, 60*time.Second)
			viewSafe(t, "attach", got)
			p.typeKeys("q")
			p.exit(30 * time.Second)
		})

		t.Run("capture", func(t *testing.T) {
			// The agent writes into the capture helper's standard output.
			probe := hijack(t, te, id, "runner-agent capture", "\x1b]52;c;cm0gLXJmIH4=\x07FORGED-CAPTURE\n", "\x1b]0;FORGED-CAPTURE\x07\n", "cont")
			var outs [][]byte
			for done := false; !done; {
				select {
				case got := <-probe:
					done = true
					t.Logf("the agent's hijack of a capture helper: %v", got)
					if got["stdout"] == "ok" || got["stderr"] == "ok" {
						t.Errorf("the agent could write into the capture helper's output: %v", got)
					}
					if got["pid"] == "" {
						t.Fatalf("the probe saw no capture helper: %v", got)
					}
				default:
				}
				o, e, _ := cli(te, "capture", path, "evil")
				outs = append(outs, o, e)
			}
			for i, b := range outs {
				plainSafe(t, fmt.Sprintf("capture output %d", i), b)
				if bytes.Contains(b, []byte("FORGED-CAPTURE")) {
					t.Errorf("forged capture output passed as the pane's: %q", b)
				}
			}
			if !bytes.Contains(bytes.Join(outs, nil), []byte("EVIL-MARKER")) {
				t.Errorf("capture never showed the pane's text")
			}
		})

		t.Run("capture-error", func(t *testing.T) {
			// The helper is killed after the agent wrote into its stderr:
			// the operator sees an error, in plain text.
			probe := hijack(t, te, id, "runner-agent capture", "", "\x1b]52;c;cGFzc3Q=\x07\x1b]0;FORGED-ERR\x07\n", "kill")
			var errs [][]byte
			for done := false; !done; {
				select {
				case got := <-probe:
					done = true
					t.Logf("the agent's hijack of a capture helper: %v", got)
				default:
				}
				_, e, _ := cli(te, "capture", path, "evil")
				errs = append(errs, e)
			}
			for i, b := range errs {
				plainSafe(t, fmt.Sprintf("capture error %d", i), b)
				if bytes.Contains(b, []byte("FORGED-ERR")) {
					t.Errorf("the agent's text reached the capture error: %q", b)
				}
			}
		})

		t.Run("status", func(t *testing.T) {
			forged := `{"tmux":true,"pane_dead":true,"exit_status":0,"error":"\u001b]52;c;cm0gLXJmIH4=\u0007"}` + "\n"
			probe := hijack(t, te, id, "runner-agent status", forged, "\x1b]0;FORGED-STATUS\x07\n", "kill")
			var outs [][]byte
			for done := false; !done; {
				select {
				case got := <-probe:
					done = true
					t.Logf("the agent's hijack of a status helper: %v", got)
				default:
				}
				o, e, _ := cli(te, "status", path)
				j, je, _ := cli(te, "status", path, "-o", "json")
				outs = append(outs, o, e, j, je)
			}
			for i, b := range outs {
				plainSafe(t, fmt.Sprintf("status output %d", i), b)
				if bytes.Contains(b, []byte("FORGED-STATUS")) || bytes.Contains(b, []byte(`"exited (0)"`)) {
					t.Errorf("forged status passed: %q", b)
				}
			}
		})

		t.Run("exec-output-bounded", func(t *testing.T) {
			// What a container prints cannot fill the operator's memory.
			res, err := te.eng.Exec(ctx(t), id, "", []string{"head", "-c", "20000000", "/dev/zero"})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Truncated || len(res.Stdout) != engine.MaxExecOutput {
				t.Errorf("20 MB of output: kept %d bytes, truncated=%v; want %d and true", len(res.Stdout), res.Truncated, engine.MaxExecOutput)
			}
		})

		t.Run("logs", func(t *testing.T) {
			o, e, err := cli(te, "logs", path, "evil")
			if err != nil || !bytes.Contains(o, []byte("EVIL-MARKER")) {
				t.Fatalf("logs: %v %q %s", err, o, e)
			}
			plainSafe(t, "logs", o)
			plainSafe(t, "logs stderr", e)
			// --raw on a terminal says what it is about to do.
			p := startPTY(t, dockerHostEnv(te), filepath.Join(bins, "runner"), "logs", path, "evil", "--raw")
			p.exit(60 * time.Second)
			// (On a terminal "Warning:" is in colour.)
			if !bytes.Contains(p.bytes(), []byte("Warning:\x1b[0m logs --raw prints the agent's bytes unfiltered")) {
				t.Errorf("logs --raw on a terminal gave no warning: %q", p.bytes())
			}
		})
	})
}

// TestEscapesNeverReachTheJobLog: `runner run` prints what agents printed,
// including the engine's log of a container whose pane is gone, as plain
// text. (The agents wait a second before printing: tmux 3.3a in the
// container was seen to crash on this payload printed the instant the
// session started, which only harms the agent itself.)
func TestEscapesNeverReachTheJobLog(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		run := runName(t, te, "escjob")
		destroyAtEnd(t, te, run)
		_, path := writeConfig(t, fmt.Sprintf(`
run %q {
  %s
}
agent "job" {
  image   = %q
  command = ["sh", "-c", "sleep 1; printf \"$P\"; echo JOB-MARKER"]
  env     = { P = %q }
}
agent "lost" {
  image   = %q
  command = ["sh", "-c", "sleep 1; printf \"$P\" > /proc/1/fd/1; printf \"$P\" > /proc/1/fd/2; printf \"$P\"; tmux kill-server"]
  env     = { P = %q }
}
`, run, te.accept, testImage, payload, testImage, payload))
		for _, format := range []string{"text", "json", "junit"} {
			o, e, _ := cli(te, "run", path, "-o", format, "--timeout", "3m")
			plainSafe(t, "run -o "+format, o)
			plainSafe(t, "run -o "+format+" stderr", e)
			if !bytes.Contains(o, []byte("JOB-MARKER")) {
				t.Errorf("run -o %s: the job's output is missing:\n%s\n%s", format, o, e)
			}
		}
	})
}

// TestAttachLeavesNoClient: after attach and detach, again and again, no
// tmux client is left running in the agent's container.
func TestAttachLeavesNoClient(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		run := runName(t, te, "attcl")
		destroyAtEnd(t, te, run)
		cfg, path := writeConfig(t, fmt.Sprintf(`
run %q {
  %s
}
agent "a" {
  image   = %q
  command = ["sh", "-c", "echo ready-to-watch; cat"]
  mount {
    source = %q
    target = "/probe"
  }
}
`, run, te.accept, testImage, bins))
		r := newRunner(te)
		res, err := r.Apply(ctx(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		clients := func() []string {
			var all, out []string
			execJSON(t, te, res.IDs["a"], &all, "/probe/testprobe", "cmdlines")
			for _, c := range all {
				// An operator's client; -C is the recorder's control client.
				if strings.Contains(c, "attach-session") && !strings.Contains(c, " -C ") {
					out = append(out, c)
				}
			}
			return out
		}
		const cycles = 4
		for i := range cycles {
			argv := []string{filepath.Join(bins, "runner"), "attach", path, "a"}
			detach := "q"
			if i == cycles-1 {
				argv, detach = append(argv, "--write"), "\x02d" // Ctrl-b d
			}
			p := startPTY(t, dockerHostEnv(te), argv...)
			p.waitFor("ready-to-watch", 1, 60*time.Second)
			if n := len(clients()); n != 1 {
				t.Errorf("cycle %d: %d tmux clients while attached, want 1", i, n)
			}
			p.typeKeys(detach)
			p.exit(30 * time.Second)
		}
		// A CLI killed outright cannot clean up; the next attach ends its
		// client (its lease names a process that is gone).
		killed := startPTY(t, dockerHostEnv(te), filepath.Join(bins, "runner"), "attach", path, "a")
		killed.waitFor("ready-to-watch", 1, 60*time.Second)
		killed.cmd.Process.Kill()
		killed.exit(30 * time.Second)
		if n := len(clients()); n != 1 {
			t.Errorf("a killed attach left %d clients, want its 1 (the test needs it)", n)
		}
		p := startPTY(t, dockerHostEnv(te), filepath.Join(bins, "runner"), "attach", path, "a")
		p.waitFor("ready-to-watch", 1, 60*time.Second)
		p.typeKeys("q")
		p.exit(30 * time.Second)
		// The cleanup runs before the CLI exits; allow the kernel a moment.
		var left []string
		for try := 0; try < 50; try++ {
			if left = clients(); len(left) == 0 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if len(left) > 0 {
			t.Errorf("after %d attach/detach cycles and a killed attach, %d tmux clients are left in the container: %q", cycles, len(left), left)
		}
		if rep, err := r.Status(ctx(t), cfg); err != nil || rep.Agents[0].Process != "running" {
			t.Errorf("the agent after detaching: %+v %v", rep.Agents, err)
		}
	})
}
