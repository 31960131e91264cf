package runner

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/shim"
)

func TestDecodePaneState(t *testing.T) {
	good := `{"tmux":true,"pane_dead":true,"exit_status":3,"exit_signal":null,"pid":18,"command":["sh","-c","x\u001b]0;t\u0007"],"relay":"connected","restarts":1,"restarting":false,"idle_s":4}` + "\n"
	st, err := decodePaneState(engine.ExecResult{Stdout: good})
	if err != nil || !st.PaneDead || *st.ExitStatus != 3 || st.Command[2] != "x" {
		t.Fatalf("good status: %+v, %v", st, err)
	}
	for name, out := range map[string]string{
		"empty":          "",
		"no newline":     strings.TrimSuffix(good, "\n"),
		"two lines":      good + good,
		"injected first": "\x1b]52;c;eA==\x07" + good,
		"unknown field":  `{"tmux":true,"evil":1}` + "\n",
		"trailing":       strings.TrimSuffix(good, "\n") + ` {}` + "\n",
		"exit range":     `{"tmux":true,"pane_dead":true,"exit_status":256}` + "\n",
		"live exit":      `{"tmux":true,"pane_dead":false,"exit_status":0}` + "\n",
		"both":           `{"tmux":true,"pane_dead":true,"exit_status":0,"exit_signal":9}` + "\n",
		"signal range":   `{"tmux":true,"pane_dead":true,"exit_signal":0}` + "\n",
		"pid":            `{"tmux":true,"pid":-1}` + "\n",
		"restarts":       `{"tmux":true,"restarts":-1}` + "\n",
		"idle":           `{"tmux":true,"idle_s":-5}` + "\n",
		"bad utf8":       `{"tmux":true,"error":"` + "\xff" + `"}` + "\n",
		"huge":           `{"tmux":true,"error":"` + strings.Repeat("a", maxStatusLine) + `"}` + "\n",
	} {
		if _, err := decodePaneState(engine.ExecResult{Stdout: out}); !errors.Is(err, errForged) {
			t.Errorf("%s: %q accepted (%v)", name, out, err)
		}
	}
	if _, err := decodePaneState(engine.ExecResult{Stdout: good, Truncated: true}); !errors.Is(err, errForged) {
		t.Errorf("truncated output accepted: %v", err)
	}
}

func TestDecodeCapture(t *testing.T) {
	frame := func(s string) string { return shim.CaptureHeader + strconv.Itoa(len(s)) + "\n" + s }
	text, err := decodeCapture(engine.ExecResult{Stdout: frame("hello\n\u009b6nworld\n")}, false)
	if err != nil || text != "hello\nworld\n" {
		t.Fatalf("capture = %q, %v", text, err)
	}
	if raw, err := decodeCapture(engine.ExecResult{Stdout: frame("\x1b[31mred\n")}, true); err != nil || raw != "\x1b[31mred\n" {
		t.Errorf("raw capture = %q, %v", raw, err)
	}
	for name, out := range map[string]string{
		"no header":   "hello\n",
		"injected":    "forged\n" + frame("hello\n"),
		"appended":    frame("hello\n") + "forged\n",
		"short":       shim.CaptureHeader + "10\nhello\n",
		"bad number":  shim.CaptureHeader + "+6\nhello\n",
		"leading 0":   shim.CaptureHeader + "06\nhello\n",
		"negative":    shim.CaptureHeader + "-1\n",
		"two frames":  frame("a\n") + frame("b\n"),
		"invalid utf": frame("\xff\n"),
	} {
		if _, err := decodeCapture(engine.ExecResult{Stdout: out}, false); !errors.Is(err, errForged) {
			t.Errorf("%s: %q accepted (%v)", name, out, err)
		}
	}
}

func TestPlainReport(t *testing.T) {
	rep := StatusReport{Relay: "ok\x1b]0;x\x07", Agents: []AgentStatus{{Agent: "a", Process: "unknown (\u009b6n\nforged\trow)", Violations: []string{"v\x1b[2J"}, Health: "ok\x1b]0;t\x07"}}}
	plainReport(&rep)
	if rep.Relay != "ok" || rep.Agents[0].Process != "unknown ( forged row)" || rep.Agents[0].Violations[0] != "v" || rep.Agents[0].Health != "ok" {
		t.Errorf("plainReport: %+v", rep)
	}
}
