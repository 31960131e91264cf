package profile

import (
	"fmt"
	"slices"
	"time"

	"github.com/runner-dev/runner/internal/engine"
)

// HealthTimings is when the engine runs every agent container's health
// check (docker-bench-security 5.27): `runner-agent health`, which exits 0
// while tmux and the agent's pane are up. Tests shorten it; nothing a user
// sets reaches it.
//
// It is a backstop, so it is rare: each check is an engine exec (about
// 60 ms of CPU on the 2-core CI machine), and every 15 s for 50 agents
// cost a fifth of a core. The signals that matter do not wait for it:
// init exits, and so the container stops, when its tmux server dies, and
// it sees the agent's command exit at once. The check catches a tmux that
// is alive but wedged, within two Intervals; until its first run the
// engine says "starting".
var HealthTimings = engine.Health{
	Interval:    5 * time.Minute,
	Timeout:     5 * time.Second, // runner-agent gives up after 4s
	StartPeriod: 15 * time.Second,
	Retries:     2, // one slow answer on a loaded host is not "unhealthy"
}

// healthCheck is the check Build puts in every Spec.
func healthCheck(agentBin string) *engine.Health {
	h := HealthTimings
	h.Test = []string{agentBin, "health"}
	return &h
}

// checkHealth compares the engine's health check with the spec's: the same
// argv (exec form, no shell) and timings, or no check on either side.
func checkHealth(want, got *engine.Health) []Violation {
	show := func(h *engine.Health) string {
		if h == nil {
			return "none"
		}
		return fmt.Sprintf("%s every %s, timeout %s, start period %s, %d retries", argv(h.Test), h.Interval, h.Timeout, h.StartPeriod, h.Retries)
	}
	same := want == nil && got == nil
	if want != nil && got != nil {
		same = slices.Equal(want.Test, got.Test) && want.Interval == got.Interval && want.Timeout == got.Timeout &&
			want.StartPeriod == got.StartPeriod && want.Retries == got.Retries
	}
	if same {
		return nil
	}
	return []Violation{{Setting: "Healthcheck", Want: show(want), Got: show(got)}}
}
