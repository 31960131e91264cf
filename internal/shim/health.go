package shim

import (
	"context"
	"fmt"
	"io"
	"time"
)

// healthTimeout bounds `runner-agent health`, below the engine's timeout
// for the check (profile.Health), so the verdict is ours, not a kill.
const healthTimeout = 4 * time.Second

// Healthy is the verdict of `runner-agent health` on a pane's status: the
// container is healthy when tmux answers, the agent's pane exists and its
// command runs, or has exited and is about to be restarted by its policy.
// A command that exited for good leaves the container unhealthy: it no
// longer does its work, though its pane is kept for `capture`.
func Healthy(st Status) (bool, string) {
	switch {
	case !st.Tmux:
		return false, "tmux is not running: " + st.Error
	case st.Error != "":
		return false, "the agent's pane cannot be read: " + st.Error
	case st.Restarting:
		return true, fmt.Sprintf("the agent's command exited and is being restarted (%d restarts so far)", st.Restarts)
	case st.PaneDead && st.ExitStatus != nil:
		return false, fmt.Sprintf("the agent's command exited with status %d", *st.ExitStatus)
	case st.PaneDead && st.ExitSignal != nil:
		return false, fmt.Sprintf("the agent's command was killed by signal %d", *st.ExitSignal)
	case st.PaneDead:
		return false, "the agent's command exited"
	case st.PID == nil:
		return false, "the agent's pane has no process"
	}
	return true, fmt.Sprintf("tmux and the agent's pane are up (pid %d)", *st.PID)
}

// health is `runner-agent health`, the container's health check: one line
// saying why, and exit 0 (healthy) or 1.
func health(stdout io.Writer, socket string) int {
	ctx, cancel := context.WithTimeout(context.Background(), healthTimeout)
	defer cancel()
	ok, why := Healthy(ReadStatus(ctx, &Tmux{Socket: socket}))
	if !ok {
		fmt.Fprintln(stdout, "unhealthy:", why)
		return 1
	}
	fmt.Fprintln(stdout, "healthy:", why)
	return 0
}
