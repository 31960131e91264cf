package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/shim"
	"github.com/runner-dev/runner/internal/termsafe"
)

// What an operator command reads back from a container comes from a helper
// (runner-agent) that runs as the agent's uid, talking to a tmux server the
// agent owns: it is the agent's word. It is checked for shape here, so that
// output which is not exactly what runner-agent prints (bytes written into
// the helper's pipe, a helper stopped or killed half-way, a flood) is
// rejected with an error that says so, never taken as a result. What the
// checks cannot do is tell the agent's own tmux server lying from the
// truth; SECURITY.md says which fields are the agent's word.

// maxStatusLine bounds `runner-agent status` output (one JSON line).
const maxStatusLine = 64 << 10

// maxCapture bounds a capture's text.
const maxCapture = engine.MaxExecOutput - 64

// errForged marks output that is not what runner-agent prints.
var errForged = errors.New("not what runner-agent prints (forged or corrupt output, rejected)")

// decodePaneState reads `runner-agent status` output strictly: exactly one
// JSON object of shim.Status on one line, no unknown fields, values in
// range.
func decodePaneState(res engine.ExecResult) (PaneState, error) {
	out := res.Stdout
	if res.Truncated || len(out) > maxStatusLine {
		return PaneState{}, fmt.Errorf("runner-agent status printed more than %d bytes: %w", maxStatusLine, errForged)
	}
	if !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 || !utf8.ValidString(out) {
		return PaneState{}, fmt.Errorf("runner-agent status exited %d: output is not one line of JSON: %w", res.ExitCode, errForged)
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	var st PaneState
	if err := dec.Decode(&st); err != nil {
		return PaneState{}, fmt.Errorf("runner-agent status exited %d: %s: %w", res.ExitCode, termsafe.Line(err.Error()), errForged)
	}
	if _, err := dec.Token(); err != io.EOF {
		return PaneState{}, fmt.Errorf("runner-agent status: data after the JSON object: %w", errForged)
	}
	if err := checkPaneState(st); err != nil {
		return PaneState{}, fmt.Errorf("runner-agent status: %v: %w", err, errForged)
	}
	st.Error = termsafe.Line(st.Error)
	st.Relay = termsafe.Line(st.Relay)
	st.Restart = termsafe.Line(st.Restart)
	for i := range st.Command {
		st.Command[i] = termsafe.Line(st.Command[i])
	}
	return st, nil
}

// checkPaneState: every number in range, the states consistent.
func checkPaneState(st PaneState) error {
	switch {
	case st.ExitStatus != nil && (*st.ExitStatus < 0 || *st.ExitStatus > 255):
		return fmt.Errorf("exit_status %d out of range", *st.ExitStatus)
	case st.ExitSignal != nil && (*st.ExitSignal < 1 || *st.ExitSignal > 64):
		return fmt.Errorf("exit_signal %d out of range", *st.ExitSignal)
	case st.ExitStatus != nil && st.ExitSignal != nil:
		return errors.New("both an exit status and a signal")
	case (st.ExitStatus != nil || st.ExitSignal != nil) && !st.PaneDead:
		return errors.New("an exit status for a live pane")
	case st.FirstRunMS != nil && *st.FirstRunMS < 0:
		return fmt.Errorf("first_run_ms %d out of range", *st.FirstRunMS)
	case st.Restarting && !st.PaneDead:
		return errors.New("restarting a live pane")
	case st.PID != nil && (*st.PID < 1 || *st.PID > 1<<22):
		return fmt.Errorf("pid %d out of range", *st.PID)
	case st.Restarts < 0 || st.Restarts > 1_000_000:
		return fmt.Errorf("restarts %d out of range", st.Restarts)
	case st.IdleS != nil && (*st.IdleS < 0 || *st.IdleS > 100*365*86400):
		return fmt.Errorf("idle_s %d out of range", *st.IdleS)
	case len(st.Command) > 4096:
		return errors.New("command too long")
	}
	return nil
}

// decodeCapture reads `runner-agent capture --framed` output: the header,
// then exactly the length it announced, valid UTF-8; the text comes back
// through termsafe's plain filter (raw: as it is).
func decodeCapture(res engine.ExecResult, raw bool) (string, error) {
	if res.Truncated {
		return "", fmt.Errorf("runner-agent capture printed more than %d bytes: %w", maxCapture, errForged)
	}
	out := res.Stdout
	rest, ok := strings.CutPrefix(out, shim.CaptureHeader)
	if !ok {
		return "", fmt.Errorf("runner-agent capture: no header: %w", errForged)
	}
	num, text, ok := strings.Cut(rest, "\n")
	n, err := strconv.Atoi(num)
	if !ok || err != nil || n < 0 || n > maxCapture || strconv.Itoa(n) != num {
		return "", fmt.Errorf("runner-agent capture: a bad header: %w", errForged)
	}
	if len(text) != n {
		return "", fmt.Errorf("runner-agent capture announced %d bytes and printed %d: %w", n, len(text), errForged)
	}
	if raw {
		return text, nil
	}
	if !utf8.ValidString(text) {
		return "", fmt.Errorf("runner-agent capture: invalid UTF-8: %w", errForged)
	}
	return termsafe.Text(text), nil
}

// plainReport makes every text field of a status report one line of plain
// text: some of them quote what a container said (errors, names read
// back), and a report is printed on a terminal or read by programs. It
// walks the fields, so one added later is covered too.
func plainReport(rep *StatusReport) {
	plainStrings(reflect.ValueOf(rep).Elem())
}

func plainStrings(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		if v.CanSet() {
			v.SetString(termsafe.Line(v.String()))
		}
	case reflect.Struct:
		for i := range v.NumField() {
			plainStrings(v.Field(i))
		}
	case reflect.Slice:
		for i := range v.Len() {
			plainStrings(v.Index(i))
		}
	case reflect.Pointer:
		if !v.IsNil() {
			plainStrings(v.Elem())
		}
	}
}
