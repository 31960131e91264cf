package runner

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/profile"
	"github.com/runner-dev/runner/internal/termsafe"
)

// startGrace is how long apply watches a new agent's command after its
// tmux came up. A command that cannot start (runner-agent's exit 127, not
// found, or 126, not executable) or that fails within this first second
// (a non-zero status, a signal, or a restart already) fails the apply for
// that agent, instead of "Apply complete" and a restart loop. A command
// that ends with status 0 is a one-shot that did its job; one that fails
// later is the restart policy's.
const startGrace = time.Second

// checkStarted watches agent a's command in container id for startGrace
// from ready (when its tmux answered).
// Agents with restart = "never" (and `runner run` jobs) are not watched:
// their command's exit is their result.
//
// One look at the end of the window is enough, and costs one exec instead
// of one every few milliseconds: tmux keeps a dead pane with its status
// (remain-on-exit), and runner-agent's supervisor waits at least a second
// before a restart, which it counts, so a command that failed inside the
// window is still dead, or restarted, when the window closes.
func (r *Runner) checkStarted(ctx context.Context, id string, a config.Agent, ready time.Time) error {
	a = profile.WithDefaults(a)
	if a.Restart == config.RestartNever {
		return nil
	}
	end := ready.Add(startGrace)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Until(end)):
	}
	ps, err := r.paneState(ctx, id)
	if err != nil {
		return nil // the pane cannot be read: status and health say so
	}
	// The answer describes some moment before it arrived. One that came
	// more than the restart pause after the window closed (a loaded
	// engine) may show a failure from after the window, so it is judged
	// only when it could not be: a command that could never start (127,
	// 126), or one whose first run init timed as ending within the window.
	if time.Since(end) > restartPause && !cannotStart(ps) && !firstRunFailedEarly(ps) {
		return nil
	}
	if why := notStarted(ps); why != "" {
		return fmt.Errorf("its command %s %s; its pane's last lines:\n%s", argvText(a.Command), why, r.lastPaneLines(ctx, id))
	}
	return nil
}

// restartPause is the least time runner-agent's supervisor waits between
// a command's exit and its restart.
const restartPause = time.Second

// firstRunFailedEarly: init saw the command's first run end within
// startGrace (older runner-agents do not say).
func firstRunFailedEarly(ps PaneState) bool {
	return ps.FirstRunMS != nil && *ps.FirstRunMS <= startGrace.Milliseconds()
}

// cannotStart: the command was not found or not executable.
func cannotStart(ps PaneState) bool {
	return ps.PaneDead && ps.ExitStatus != nil && (*ps.ExitStatus == 127 || *ps.ExitStatus == 126)
}

// notStarted says why a pane shows a command that did not start or did not
// stay up, or "" if it is running (or ended with status 0).
func notStarted(ps PaneState) string {
	switch {
	case ps.PaneDead && ps.ExitStatus != nil && *ps.ExitStatus == 127:
		return "cannot start: exit status 127 (not found: check the command and the image's PATH)"
	case ps.PaneDead && ps.ExitStatus != nil && *ps.ExitStatus == 126:
		return "cannot start: exit status 126 (found but not executable: check its mode and interpreter)"
	case ps.PaneDead && ps.ExitStatus != nil && *ps.ExitStatus != 0:
		return fmt.Sprintf("exited within its first second (exit status %d)", *ps.ExitStatus)
	case ps.PaneDead && ps.ExitSignal != nil:
		return fmt.Sprintf("was killed by signal %d within its first second", *ps.ExitSignal)
	case ps.Restarts > 0:
		return fmt.Sprintf("failed within its first second and was restarted %d time(s)", ps.Restarts)
	}
	return ""
}

func argvText(argv []string) string { return strings.Join(quote(argv), " ") }

// lastPaneLines are the last few non-empty lines of the pane, as plain
// text (what a container prints is untrusted).
func (r *Runner) lastPaneLines(ctx context.Context, id string) string {
	text, err := r.captureText(ctx, id, -1, false)
	if err != nil {
		return "    (the pane could not be read: " + termsafe.Line(err.Error()) + ")"
	}
	var lines []string
	for _, l := range strings.Split(termsafe.Text(text), "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, "    "+strings.TrimRight(termsafe.Line(l), " "))
		}
	}
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	if len(lines) == 0 {
		return "    (empty)"
	}
	return strings.Join(lines, "\n")
}
