package shim

import (
	"context"
	"strings"
	"testing"
	"time"
)

func intp(n int) *int { return &n }

func TestHealthyVerdict(t *testing.T) {
	cases := []struct {
		name string
		st   Status
		ok   bool
		why  string
	}{
		{"no tmux", Status{Error: "no tmux server running on /s"}, false, "tmux is not running"},
		{"pane gone", Status{Tmux: true, Error: "can't find pane: %0"}, false, "cannot be read"},
		{"running", Status{Tmux: true, PID: intp(42)}, true, "pid 42"},
		{"exited", Status{Tmux: true, PaneDead: true, ExitStatus: intp(0)}, false, "exited with status 0"},
		{"killed", Status{Tmux: true, PaneDead: true, ExitSignal: intp(9)}, false, "signal 9"},
		{"restarting", Status{Tmux: true, PaneDead: true, ExitStatus: intp(3), Restarting: true, Restarts: 1}, true, "being restarted"},
		{"no process", Status{Tmux: true}, false, "no process"},
	}
	for _, c := range cases {
		ok, why := Healthy(c.st)
		if ok != c.ok || !strings.Contains(why, c.why) {
			t.Errorf("%s: Healthy = %v, %q; want %v, ...%q...", c.name, ok, why, c.ok, c.why)
		}
	}
}

// `runner-agent health` against a real tmux: exit 0 while the agent's pane
// runs, 1 once it is killed, or with no server at all.
func TestHealthCommand(t *testing.T) {
	p := startInit(t, nil, "sleep", "1000")
	st := p.waitStatus(t, func(st Status) bool { return st.Tmux && st.PID != nil })
	out, _, code := runMain("health", "--socket", p.tm.Socket)
	if code != 0 || !strings.HasPrefix(out, "healthy: ") || strings.Count(out, "\n") != 1 {
		t.Fatalf("health of a running pane: exit %d, %q", code, out)
	}
	// Another window keeps the server up while the agent's pane goes.
	// init records the pane's id just after creating it: wait for that.
	var pane string
	waitFor(t, 10*time.Second, "init's "+OptionPane, func() bool {
		pane, _ = p.tm.Option(context.Background(), OptionPane)
		return pane != ""
	})
	if _, err := p.tm.exec(context.Background(), "new-window", "-d", "-t", "="+SessionName+":", "sleep", "1000"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.tm.exec(context.Background(), "kill-pane", "-t", pane); err != nil {
		t.Fatal(err)
	}
	out, _, code = runMain("health", "--socket", p.tm.Socket)
	if code != 1 || !strings.HasPrefix(out, "unhealthy: the agent's pane cannot be read") {
		t.Errorf("health with the agent's pane %s (pid %d) killed: exit %d, %q", pane, *st.PID, code, out)
	}
	out, _, code = runMain("health", "--socket", p.tm.Socket+".none")
	if code != 1 || !strings.HasPrefix(out, "unhealthy: tmux is not running") {
		t.Errorf("health without tmux: exit %d, %q", code, out)
	}
	if _, _, code := runMain("health", "extra"); code != ExitUsage {
		t.Errorf("health with an argument: exit %d", code)
	}
}
