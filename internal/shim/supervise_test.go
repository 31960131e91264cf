package shim

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runner-dev/runner/internal/relay"
)

func TestParseRestartPolicy(t *testing.T) {
	for in, want := range map[string]RestartPolicy{
		"":             {RestartNever, 0},
		"never":        {RestartNever, 0},
		"never:3":      {RestartNever, 3},
		"on-failure:5": {RestartOnFailure, 5},
		"on-failure":   {RestartOnFailure, 5},
		"always:0":     {RestartAlways, 0},
		"always:1000":  {RestartAlways, 1000},
	} {
		if got, err := ParseRestartPolicy(in); err != nil || got != want {
			t.Errorf("ParseRestartPolicy(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"sometimes:1", "always:-1", "always:1001", "always:x", "On-Failure:1", "on-failure:"} {
		if got, err := ParseRestartPolicy(in); err == nil || got.Mode != RestartNever {
			t.Errorf("ParseRestartPolicy(%q) = %+v, %v; want an error and never", in, got, err)
		}
	}
}

func TestRestartPolicyDecides(t *testing.T) {
	n := func(v int) *int { return &v }
	exit0 := PaneState{Dead: true, ExitStatus: n(0)}
	exit3 := PaneState{Dead: true, ExitStatus: n(3)}
	killed := PaneState{Dead: true, ExitSignal: n(9)}
	running := PaneState{}
	for _, tc := range []struct {
		policy string
		st     PaneState
		done   int
		want   bool
	}{
		{"on-failure:5", exit3, 0, true},
		{"on-failure:5", killed, 4, true},
		{"on-failure:5", exit3, 5, false}, // max reached
		{"on-failure:5", exit0, 0, false},
		{"always:2", exit0, 1, true},
		{"always:2", exit3, 1, true},
		{"always:2", exit0, 2, false},
		{"always:0", exit3, 0, false},
		{"never:9", exit3, 0, false},
		{"on-failure:5", running, 0, false},
	} {
		p, _ := ParseRestartPolicy(tc.policy)
		if got := p.Restart(tc.st, tc.done); got != tc.want {
			t.Errorf("%s after %d restarts, %+v: restart = %v, want %v", tc.policy, tc.done, tc.st, got, tc.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	var b Backoff
	var got []time.Duration
	for range 7 {
		got = append(got, b.Next(time.Second))
	}
	want := []time.Duration{1, 2, 4, 8, 16, 30, 30}
	for i := range want {
		want[i] *= time.Second
	}
	if !slices.Equal(got, want) {
		t.Errorf("backoff %v, want %v", got, want)
	}
	if d := b.Next(time.Minute); d != time.Second {
		t.Errorf("after a command that ran a minute: %s, want 1s", d)
	}
	if d := b.Next(59 * time.Second); d != 2*time.Second {
		t.Errorf("after a command that ran 59s: %s, want 2s", d)
	}
	b = Backoff{Min: 10 * time.Millisecond, Max: 25 * time.Millisecond, Reset: time.Second}
	for _, want := range []time.Duration{10, 20, 25, 25} {
		if d := b.Next(0); d != want*time.Millisecond {
			t.Errorf("custom backoff %s, want %dms", d, want)
		}
	}
}

// fakeClock is a clock whose After fires at once, moving time forward by
// the duration asked for, and records it.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waits = append(c.waits, d)
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

func (c *fakeClock) advance(d time.Duration) { c.set(c.Now().Add(d)) }

// supervised starts argv in a pane (as init would: through runner-agent
// exec) and returns a Supervisor for it on a fake clock, not running: the
// test calls step.
func supervised(t *testing.T, policy string, argv ...string) (*Supervisor, *fakeClock) {
	t.Helper()
	tm, _ := testTmux(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	pane := newSession(t, tm, append([]string{self, "exec", "--"}, argv...)...)
	p, err := ParseRestartPolicy(policy)
	if err != nil {
		t.Fatal(err)
	}
	fc := &fakeClock{now: time.Unix(1_000_000, 0)}
	s := &Supervisor{Tmux: tm, Pane: pane, Self: self, Argv: argv, Policy: p,
		StateFile: supervisorStatePath(tm.Socket), Logf: t.Logf, clock: fc}
	s.started = fc.Now()
	return s, fc
}

// stepUntil calls s.step until cond holds (real time passes between steps,
// for the pane's command to run).
func stepUntil(t *testing.T, s *Supervisor, what string, cond func(PaneState) bool) PaneState {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		s.step(context.Background())
		st, err := s.Tmux.PaneState(context.Background(), s.Pane)
		if err == nil && cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			out, _ := s.Tmux.Capture(context.Background(), s.Pane, 0)
			t.Fatalf("never %s: %+v, %v, %d restarts; pane:\n%s", what, st, err, s.restarts, out)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

func scrollback(t *testing.T, s *Supervisor) string {
	t.Helper()
	out, err := s.Tmux.Capture(context.Background(), s.Pane, 0)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// on-failure: a command that exits 3 is restarted max_restarts times, each
// status stays visible in the scrollback, and the pauses follow the
// backoff — back to 1s after a run of a minute.
func TestSupervisorRestartsOnFailure(t *testing.T) {
	s, fc := supervised(t, "on-failure:3", "/bin/sh", "-c", "echo run-$$; sleep 0.3; exit 3")
	for n := 1; n <= 2; n++ {
		stepUntil(t, s, "restarted", func(PaneState) bool { return s.restarts == n })
	}
	fc.advance(61 * time.Second) // the third run "ran" a minute
	st := stepUntil(t, s, "dead for good", func(st PaneState) bool { return s.restarts == 3 && st.Dead && s.handled == st.PID })
	for range 3 { // and stays so
		s.step(context.Background())
	}
	if s.restarts != 3 || s.restarting || st.ExitStatus == nil || *st.ExitStatus != 3 {
		t.Errorf("after max_restarts: %d restarts, restarting %v, %+v", s.restarts, s.restarting, st)
	}
	if want := []time.Duration{time.Second, 2 * time.Second, time.Second}; !slices.Equal(fc.waits, want) {
		t.Errorf("pauses %v, want %v", fc.waits, want)
	}
	out := scrollback(t, s)
	if n := strings.Count(out, "Pane is dead (status 3,"); n != 4 {
		t.Errorf("%d exit statuses in the scrollback, want 4:\n%s", n, out)
	}
	if n := strings.Count(out, "run-"); n != 4 {
		t.Errorf("%d runs in the scrollback, want 4:\n%s", n, out)
	}
	for _, note := range []string{"restart 1 of 3", "restart 2 of 3", "restart 3 of 3"} {
		if !strings.Contains(out, "runner-agent: the command ended (exit status 3); "+note+` (restart = "on-failure")`) {
			t.Errorf("no note %q in the scrollback:\n%s", note, out)
		}
	}
	// The statuses are in order: each run's output, then its exit line.
	if i, j := strings.Index(out, "Pane is dead"), strings.Index(out, "restart 1 of 3"); i < 0 || j < i {
		t.Errorf("exit status and restart note out of order:\n%s", out)
	}

	b, _ := os.ReadFile(s.StateFile)
	var sv supervisorState
	if json.Unmarshal(b, &sv) != nil || sv.Policy != "on-failure:3" || sv.Restarts != 3 || sv.Restarting {
		t.Errorf("state file %s", b)
	}
	// The first run ended at once (the fake clock did not move before it).
	if sv.FirstRunMS == nil || *sv.FirstRunMS != 0 {
		t.Errorf("state file %s: want first_run_ms 0", b)
	}
	status := ReadStatus(context.Background(), s.Tmux)
	if !status.PaneDead || status.Restarts != 3 || status.Restarting || status.Restart != "on-failure:3" || *status.ExitStatus != 3 {
		t.Errorf("status %+v", status)
	}
}

func TestSupervisorPolicies(t *testing.T) {
	for _, tc := range []struct {
		name, policy, code string
		restarts           int
	}{
		{"never does not restart", "never", "3", 0},
		{"on-failure leaves exit 0", "on-failure:5", "0", 0},
		{"always restarts after exit 0", "always:2", "0", 2},
		{"max_restarts 0", "always:0", "3", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, _ := supervised(t, tc.policy, "/bin/sh", "-c", "echo ran; sleep 0.2; exit "+tc.code)
			st := stepUntil(t, s, "dead for good", func(st PaneState) bool { return st.Dead && s.handled == st.PID })
			first := st.PID
			for range 5 {
				time.Sleep(20 * time.Millisecond)
				s.step(context.Background())
			}
			st, _ = s.Tmux.PaneState(context.Background(), s.Pane)
			if s.restarts != tc.restarts || !st.Dead || (tc.restarts == 0 && st.PID != first) {
				t.Errorf("%d restarts (want %d), %+v (first pid %d)", s.restarts, tc.restarts, st, first)
			}
			out := scrollback(t, s)
			if n := strings.Count(out, "Pane is dead (status "+tc.code+","); n != tc.restarts+1 {
				t.Errorf("%d exit lines, want %d:\n%s", n, tc.restarts+1, out)
			}
			if status := ReadStatus(context.Background(), s.Tmux); status.Restarting || status.Restarts != tc.restarts {
				t.Errorf("status %+v", status)
			}
		})
	}
}

// Status says "restarting" from the moment the command exits, before the
// supervisor has even looked: runner run must never take it for the end.
func TestStatusRestartingBeforeTheSupervisorNotices(t *testing.T) {
	s, _ := supervised(t, "on-failure:1", "/bin/sh", "-c", "exit 4")
	s.writeState() // as Run does at start
	waitDead(t, s.Tmux, s.Pane)
	if st := ReadStatus(context.Background(), s.Tmux); !st.PaneDead || !st.Restarting || st.Restarts != 0 {
		t.Errorf("status %+v, want dead and restarting", st)
	}
	stepUntil(t, s, "restarted and dead", func(st PaneState) bool { return s.restarts == 1 && st.Dead })
	if st := ReadStatus(context.Background(), s.Tmux); !st.PaneDead || st.Restarting || st.Restarts != 1 {
		t.Errorf("status %+v, want dead for good", st)
	}
}

// Idle reports: once per after_idle time crossed per quiet spell, counted
// from the end of the second tmux gives for the last output; output starts
// a new spell; a failed report is retried after 5s.
func TestSupervisorIdleReports(t *testing.T) {
	s, fc := supervised(t, "never", "cat")
	var (
		mu      sync.Mutex
		reports []int
		fail    bool
	)
	s.IdleAfter = func() []int { return []int{2, 5} }
	s.ReportIdle = func(_ context.Context, secs int) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			fail = false
			return 0, errors.New("relay down")
		}
		reports = append(reports, secs)
		return 1, nil
	}
	got := func() []int { mu.Lock(); defer mu.Unlock(); return slices.Clone(reports) }
	st := stepUntil(t, s, "running", func(st PaneState) bool { return st.Running() && !st.Activity.IsZero() })
	act := st.Activity
	at := func(d time.Duration) {
		t.Helper()
		fc.set(act.Add(d))
		s.step(context.Background())
	}
	at(2900 * time.Millisecond) // 1.9s after the end of the output's second
	if r := got(); len(r) != 0 {
		t.Fatalf("reported %v before 2s of quiet", r)
	}
	at(3 * time.Second)
	at(3500 * time.Millisecond)
	if r := got(); !slices.Equal(r, []int{2}) {
		t.Fatalf("reports %v, want [2]", r)
	}
	mu.Lock()
	fail = true
	mu.Unlock()
	at(6 * time.Second) // crosses 5s, but the relay is down
	at(8 * time.Second) // not retried yet
	if r := got(); !slices.Equal(r, []int{2}) {
		t.Fatalf("reports %v, want [2]", r)
	}
	at(11 * time.Second)
	at(12 * time.Second)
	if r := got(); !slices.Equal(r, []int{2, 10}) {
		t.Fatalf("reports %v, want [2 10] (the retry)", r)
	}

	// Output: a new spell, reported again. It must fall in a later second
	// than the last output for tmux to show it.
	fc.set(act) // so that no step below sees a long quiet
	for time.Now().Unix() <= act.Unix() {
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := s.Tmux.exec(context.Background(), "send-keys", "-t", s.Pane, "-l", "x"); err != nil {
		t.Fatal(err)
	}
	st = stepUntil(t, s, "output", func(st PaneState) bool { return st.Activity.After(act) })
	act = st.Activity
	at(3 * time.Second)
	if r := got(); !slices.Equal(r, []int{2, 10, 2}) {
		t.Fatalf("reports %v, want [2 10 2]", r)
	}
	if st := ReadStatus(context.Background(), s.Tmux); st.IdleS == nil {
		t.Errorf("status without idle_s: %+v", st)
	}
}

// The whole path in init: RUNNER_RESTART from the environment, a real 1s
// backoff, "restarting" in status while it waits, the statuses in capture.
func TestInitRestartsFromEnvironment(t *testing.T) {
	p := startInit(t, []string{EnvRestart + "=on-failure:1"}, "/bin/sh", "-c", "echo started; sleep 0.3; exit 5")
	p.waitStatus(t, func(s Status) bool { return s.PaneDead && s.Restarting && s.Restarts == 0 })
	st := p.waitStatus(t, func(s Status) bool { return s.Restarts == 1 && s.PaneDead && !s.Restarting })
	if st.ExitStatus == nil || *st.ExitStatus != 5 || st.Restart != "on-failure:1" {
		t.Errorf("status %+v", st)
	}
	// Under load a capture can come back before tmux has drawn everything;
	// look again for a while before calling it missing.
	var out string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out, _, _ = runMain("capture", "--socket", p.tm.Socket, "--lines", "0")
		if strings.Count(out, "Pane is dead (status 5,") == 2 && strings.Count(out, "started") == 2 && strings.Contains(out, "restart 1 of 1") {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("capture:\n%s", out)
			break
		}
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(p.stderr.String(), "not restarting it: max_restarts (1) reached"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("init's log:\n%s", p.stderr.String())
		}
	}
}

// And the idle path: init reports a quiet pane to a real relay, which
// fires the after_idle check-in; the pane shows it.
func TestInitIdleNudge(t *testing.T) {
	r := startRelay(t, nil, "eng-1")
	r.stop()
	r.cfg.Checkins = []relay.Checkin{{Agent: "eng-1", AfterIdle: time.Second, Message: "still there?"}}
	r.start()
	p := startInit(t, []string{EnvRelaySocket + "=" + r.cfg.Sockets["eng-1"], EnvCredential + "=" + r.creds["eng-1"]}, "cat")
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _, _ := runMain("capture", "--socket", p.tm.Socket)
		if strings.Contains(out, "[check-in] still there?") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no idle check-in in the pane:\n%s\ninit's log:\n%s", out, p.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(p.stderr.String(), "check-ins fired)") {
		t.Errorf("init's log:\n%s", p.stderr.String())
	}
}
