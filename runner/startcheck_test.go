package runner

import (
	"strings"
	"testing"
)

func TestNotStarted(t *testing.T) {
	n := func(i int) *int { return &i }
	for _, tc := range []struct {
		ps   PaneState
		want string
	}{
		{PaneState{Tmux: true}, ""},
		{PaneState{Tmux: true, PaneDead: true, ExitStatus: n(127)}, "exit status 127 (not found"},
		{PaneState{Tmux: true, PaneDead: true, ExitStatus: n(126), Restarting: true}, "exit status 126 (found but not executable"},
		{PaneState{Tmux: true, PaneDead: true, ExitStatus: n(3), Restarting: true}, "exited within its first second (exit status 3)"},
		{PaneState{Tmux: true, PaneDead: true, ExitSignal: n(9)}, "killed by signal 9 within its first second"},
		{PaneState{Tmux: true, Restarts: 2}, "restarted 2 time(s)"}, // running again after failing fast
		{PaneState{Tmux: true, PaneDead: false}, ""},
		{PaneState{Tmux: true, PaneDead: true, ExitStatus: n(0)}, ""}, // exited 0 and stays exited: on-failure does not restart it
	} {
		got := notStarted(tc.ps)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%+v: %q, want %q", tc.ps, got, tc.want)
		}
	}
}
