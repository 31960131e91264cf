package shim

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runner-dev/runner/internal/relay"
)

// What init does about the agent's command besides starting it: restart it
// by its policy when it exits, and tell the relay when its pane has been
// quiet for one of the agent's after_idle times. Both are the Supervisor's.

// EnvRestart is the environment variable that gives init the restart policy,
// as POLICY:MAX_RESTARTS ("on-failure:5"); the runner sets it on every
// container (profile.EnvRestart). Unset means never: a container started
// without it keeps today's behaviour, the dead pane stays as it is.
const EnvRestart = "RUNNER_RESTART"

// Restart policies.
const (
	RestartOnFailure = "on-failure" // after a non-zero exit status or a signal
	RestartAlways    = "always"     // after any exit
	RestartNever     = "never"
)

// maxMaxRestarts is the config's limit, checked again here.
const maxMaxRestarts = 1000

// RestartPolicy is when the agent's command is started again after it
// exits, and how many times at most over the container's life.
type RestartPolicy struct {
	Mode string // RestartOnFailure, RestartAlways or RestartNever
	Max  int    // restarts allowed in all
}

// ParseRestartPolicy reads POLICY:MAX ("on-failure:5", "always:0",
// "never"). "" is never.
func ParseRestartPolicy(s string) (RestartPolicy, error) {
	never := RestartPolicy{Mode: RestartNever}
	if s == "" {
		return never, nil
	}
	mode, n, hasMax := strings.Cut(s, ":")
	p := RestartPolicy{Mode: mode}
	switch mode {
	case RestartOnFailure, RestartAlways, RestartNever:
	default:
		return never, fmt.Errorf("%s=%q: the policy is not on-failure, always or never", EnvRestart, s)
	}
	if hasMax {
		v, err := strconv.Atoi(n)
		if err != nil || v < 0 || v > maxMaxRestarts {
			return never, fmt.Errorf("%s=%q: the restart count is not a number from 0 to %d", EnvRestart, s, maxMaxRestarts)
		}
		p.Max = v
	} else if mode != RestartNever {
		p.Max = 5
	}
	return p, nil
}

func (p RestartPolicy) String() string { return p.Mode + ":" + strconv.Itoa(p.Max) }

// Restart reports whether a command that ended as ps says is started again
// when done restarts have happened already: on-failure after a non-zero
// status or a signal, always after any exit, never not; and never more
// than Max times.
func (p RestartPolicy) Restart(ps PaneState, done int) bool {
	if !ps.Dead || done >= p.Max {
		return false
	}
	switch p.Mode {
	case RestartAlways:
		return true
	case RestartOnFailure:
		return ps.ExitSignal != nil || (ps.ExitStatus != nil && *ps.ExitStatus != 0)
	}
	return false
}

// Backoff is the pause before each restart: Min, doubling up to Max, and
// back to Min once a command ran for Reset or longer (it did work, so this
// is a new failure, not a crash loop). Zero fields take 1s, 30s and 60s.
type Backoff struct {
	Min, Max, Reset time.Duration
	next            time.Duration
}

// Next returns the pause before restarting a command that ran for ran.
func (b *Backoff) Next(ran time.Duration) time.Duration {
	minD, maxD, reset := orDefault(b.Min, time.Second), orDefault(b.Max, 30*time.Second), orDefault(b.Reset, time.Minute)
	if b.next == 0 || ran >= reset {
		b.next = minD
	}
	d := b.next
	b.next = min(2*b.next, maxD)
	return d
}

// clock is time, replaceable in tests.
type clock interface {
	Now() time.Time
	After(time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// SupervisorStateFile is the file, next to the tmux socket, where init keeps
// the restart state for `runner-agent status` (JSON, supervisorState).
const SupervisorStateFile = "supervisor"

type supervisorState struct {
	Policy     string `json:"policy"`     // RestartPolicy.String()
	Restarts   int    `json:"restarts"`   // done so far
	Restarting bool   `json:"restarting"` // the command exited and is about to start again
	// FirstRunMS is how long the command's first run lasted, once it
	// ended (as init saw it: at most a poll late), so apply can tell a
	// command that failed in its first second however late it asks.
	FirstRunMS *int64 `json:"first_run_ms,omitempty"`
}

func supervisorStatePath(socket string) string {
	return filepath.Join(filepath.Dir(socket), SupervisorStateFile)
}

func readSupervisorState(socket string) supervisorState {
	var st supervisorState
	if b, err := os.ReadFile(supervisorStatePath(socket)); err == nil {
		_ = json.Unmarshal(b, &st)
	}
	return st
}

// addSupervisor fills the status fields that come from init's supervisor
// and the pane's activity. Restarting is also derived from the policy, so
// that the moment between the exit and the supervisor noticing it never
// looks like a final exit.
func (st *Status) addSupervisor(socket string, ps PaneState, now time.Time) {
	if !ps.Activity.IsZero() {
		idle := max(int64(now.Sub(ps.Activity)/time.Second), 0)
		st.IdleS = &idle
	}
	sv := readSupervisorState(socket)
	st.Restart, st.Restarts, st.FirstRunMS = sv.Policy, sv.Restarts, sv.FirstRunMS
	pol, _ := ParseRestartPolicy(sv.Policy)
	st.Restarting = ps.Dead && (sv.Restarting || pol.Restart(ps, sv.Restarts))
}

// Supervisor watches the agent's pane (every Poll) and
//
//   - when its command has exited, restarts it if Policy says so: after a
//     pause (Backoff), it respawns the pane with `Self exec --note NOTE --
//     Argv...` (Tmux.Respawn keeps the ended run's output and tmux's "Pane
//     is dead (status N, ...)" line in the scrollback, and NOTE says which
//     restart this is). Otherwise, or after Policy.Max restarts, the pane
//     stays dead, showing the last status;
//   - while it runs, tells the relay (ReportIdle, the idle request) when
//     the pane has printed nothing for one of IdleAfter's times: once per
//     time crossed per quiet spell. A spell ends with any output, a check-in
//     the agent echoes included.
//
// It keeps its state in StateFile for `runner-agent status`.
type Supervisor struct {
	Tmux   *Tmux
	Pane   string
	Self   string   // the runner-agent binary
	Argv   []string // the agent's command
	Dir    string   // where it runs; "" = the pane's
	Policy RestartPolicy
	// StateFile receives the state (JSON); "" for none.
	StateFile string
	Logf      func(format string, a ...any)
	Poll      time.Duration // default 1s
	Backoff   Backoff
	// IdleAfter returns the relay's after_idle times for this agent, in
	// seconds (Deliverer.IdleAfter); ReportIdle sends the idle request and
	// returns how many check-ins it fired. Either nil: no idle reports.
	IdleAfter  func() []int
	ReportIdle func(ctx context.Context, secs int) (int, error)

	clock      clock
	restarts   int
	restarting bool
	firstRun   *int64    // ms, see supervisorState.FirstRunMS
	started    time.Time // when the current command started, as far as we know
	handled    int       // the dead pane process already decided on
	spell      time.Time // the pane's last output: the current quiet spell began then
	reported   int       // the greatest after_idle time reported in this spell
	retryAt    time.Time // no idle report before then (the last one failed)
	note       string    // the last problem logged
	// wakeAt is when the pane must be looked at again even if tmux reports
	// no change (the next after_idle time due); zero: at the next tick.
	wakeAt time.Time
	// The pane process whose exit is watched (watchPID).
	pidWatched int
	pidStop    chan struct{}
}

// quietCheck bounds how long the supervisor trusts change notifications
// alone (an after_idle list that changed at a relay reconnect is picked up
// by then).
const quietCheck = 30 * time.Second

func (s *Supervisor) logf(format string, a ...any) {
	if s.Logf != nil {
		s.Logf(format, a...)
	}
}

func (s *Supervisor) problem(msg string) {
	if msg != s.note {
		s.note = msg
		s.logf("%s", msg)
	}
}

func (s *Supervisor) writeState() {
	if s.StateFile == "" {
		return
	}
	b, _ := json.Marshal(supervisorState{Policy: s.Policy.String(), Restarts: s.restarts, Restarting: s.restarting, FirstRunMS: s.firstRun})
	if err := writeFileAtomic(s.StateFile, string(b)+"\n"); err != nil {
		s.problem(fmt.Sprintf("cannot record the restart state: %v", err))
	}
}

// Run supervises until ctx is done. With a control connection that
// watches the pane (Control.Watch), it looks at the pane when tmux reports
// a change and when an after_idle time falls due, and not otherwise; the
// tick (Poll) then costs nothing but a timer. Without one, or while it is
// down, it looks at every tick.
func (s *Supervisor) Run(ctx context.Context) {
	if s.clock == nil {
		s.clock = realClock{}
	}
	s.started = s.clock.Now()
	s.writeState()
	var changes <-chan struct{}
	ctl := s.Tmux.Ctl
	if ctl != nil && ctl.Watch != "" {
		var cancel func()
		changes, cancel = ctl.Changes()
		defer cancel()
	}
	defer s.unwatchPID()
	poll := orDefault(s.Poll, time.Second)
	t := time.NewTimer(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changes:
			s.wakeAt = time.Time{}
		case <-t.C:
		}
		now := s.clock.Now()
		watching := changes != nil && ctl.Watching()
		if !watching || s.wakeAt.IsZero() || !now.Before(s.wakeAt) {
			s.step(ctx)
			now = s.clock.Now()
		}
		// Without notifications, look every poll; with them, only when
		// something is due.
		next := poll
		if watching && !s.wakeAt.IsZero() {
			next = max(s.wakeAt.Sub(now), poll)
		}
		t.Reset(next)
	}
}

// watchPID makes the exit of the pane's process pid an event (a pidfd
// becomes readable when the process exits, reaped or not): tmux has been
// seen to miss a pane's SIGCHLD and then shows the pane as running (see
// PaneState), and nothing else would say so. Without pidfds (old kernels,
// some sandboxes) the supervisor looks every Poll instead.
func (s *Supervisor) watchPID(pid int) bool {
	if pid == s.pidWatched && s.pidStop != nil {
		return true
	}
	s.unwatchPID()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return false
	}
	stop := make(chan struct{})
	s.pidWatched, s.pidStop = pid, stop
	ctl := s.Tmux.Ctl
	go func() {
		defer unix.Close(fd)
		for {
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, err := unix.Poll(fds, int(quietCheck/time.Millisecond))
			select {
			case <-stop:
				return
			default:
			}
			if err == nil && n > 0 {
				// Let tmux read the last output before anyone nudges it.
				select {
				case <-stop:
				case <-time.After(zombieGrace):
					ctl.changed()
				}
				return
			}
			if err != nil && err != unix.EINTR {
				return
			}
		}
	}()
	return true
}

func (s *Supervisor) unwatchPID() {
	if s.pidStop != nil {
		close(s.pidStop)
		s.pidStop, s.pidWatched = nil, 0
	}
}

// step looks at the pane once and acts on what it sees.
func (s *Supervisor) step(ctx context.Context) {
	s.wakeAt = time.Time{}
	st, err := s.Tmux.PaneState(ctx, s.Pane)
	if err != nil {
		if ctx.Err() == nil {
			s.problem(fmt.Sprintf("supervisor: %v", err))
		}
		return
	}
	switch {
	case st.Dead:
		s.exited(ctx, st)
		if st.PID != 0 && st.PID == s.handled {
			s.wakeAt = s.clock.Now().Add(quietCheck) // decided: until it changes
		}
	case st.Running():
		if s.Tmux.Ctl != nil && s.Tmux.Ctl.Watch != "" && s.watchPID(st.PID) {
			s.wakeAt = s.clock.Now().Add(quietCheck)
		}
		s.idle(ctx, st)
	}
}

// describeExit says how the pane's command ended.
func describeExit(st PaneState) string {
	switch {
	case st.ExitSignal != nil:
		return fmt.Sprintf("killed by signal %d (%s)", *st.ExitSignal, syscall.Signal(*st.ExitSignal))
	case st.ExitStatus != nil:
		return "exit status " + strconv.Itoa(*st.ExitStatus)
	}
	return "exited"
}

// exited decides, once per ended command, whether to restart it, and does.
func (s *Supervisor) exited(ctx context.Context, st PaneState) {
	if st.PID != 0 && st.PID == s.handled {
		return
	}
	ran := s.clock.Now().Sub(s.started)
	if s.firstRun == nil {
		ms := ran.Milliseconds()
		s.firstRun = &ms
	}
	how := describeExit(st)
	if !s.Policy.Restart(st, s.restarts) {
		s.handled = st.PID
		why := fmt.Sprintf("restart = %q", s.Policy.Mode)
		switch {
		case s.Policy.Mode == RestartNever:
		case s.restarts >= s.Policy.Max:
			why = fmt.Sprintf("max_restarts (%d) reached", s.Policy.Max)
		default:
			why += " restarts only after a failure"
		}
		s.restarting = false
		s.writeState()
		s.logf("the agent's command ended (%s after %s); not restarting it: %s", how, ran.Round(time.Second), why)
		return
	}
	delay := s.Backoff.Next(ran)
	s.restarting = true
	s.writeState()
	n := s.restarts + 1
	s.logf("the agent's command ended (%s after %s): restart %d of %d in %s", how, ran.Round(time.Second), n, s.Policy.Max, delay)
	select {
	case <-ctx.Done():
		return
	case <-s.clock.After(delay):
	}
	note := fmt.Sprintf("runner-agent: the command ended (%s); restart %d of %d (restart = %q)", how, n, s.Policy.Max, s.Policy.Mode)
	argv := append([]string{s.Self, "exec", "--note", note, "--"}, s.Argv...)
	if err := s.Tmux.Respawn(ctx, s.Pane, s.Dir, argv); err != nil {
		if ctx.Err() == nil {
			s.logf("restart %d failed: %v; trying again", n, err)
		}
		return // still unhandled: the next poll tries again
	}
	s.restarts, s.restarting, s.started, s.handled = n, false, s.clock.Now(), st.PID
	s.writeState()
}

// idle reports the pane's quiet spell to the relay when it crosses one of
// the agent's after_idle times.
func (s *Supervisor) idle(ctx context.Context, st PaneState) {
	if st.Activity.IsZero() || s.IdleAfter == nil || s.ReportIdle == nil {
		return
	}
	if !st.Activity.Equal(s.spell) {
		s.spell, s.reported = st.Activity, 0 // output: a new spell
	}
	now := s.clock.Now()
	// tmux gives the second of the last output; counting from the end of
	// that second, the idle time is never overstated.
	secs := int(now.Sub(st.Activity.Add(time.Second)) / time.Second)
	crossed, next := 0, 0
	for _, t := range s.IdleAfter() {
		if t <= secs && t > crossed {
			crossed = t
		}
		if t > secs && (next == 0 || t < next) {
			next = t
		}
	}
	// The next time due, if the pane stays quiet (output meanwhile only
	// makes it later, which that look finds out).
	if next > 0 {
		if at := st.Activity.Add(time.Second + time.Duration(next)*time.Second); at.Before(s.wakeAt) {
			s.wakeAt = at
		}
	}
	if crossed == 0 || crossed <= s.reported {
		return
	}
	if now.Before(s.retryAt) {
		s.wakeAt = time.Time{}
		return
	}
	fired, err := s.ReportIdle(ctx, secs)
	if err != nil {
		if ctx.Err() == nil {
			s.retryAt = now.Add(5 * time.Second)
			s.wakeAt = time.Time{}
			s.problem(fmt.Sprintf("relay: cannot report %ds of quiet in the pane: %v; retrying", secs, err))
		}
		return
	}
	s.note, s.retryAt = "", time.Time{}
	s.reported = crossed
	s.logf("relay: the pane has printed nothing for %ds: reported (%d check-ins fired)", secs, fired)
}

// reportIdle sends the idle request on a connection of its own.
func reportIdle(ctx context.Context, secs int) (int, error) {
	socket, cred := RelayPaths()
	tok, err := readCredential(cred)
	if err != nil {
		return 0, err
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := relay.Dial(dctx, socket, tok)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.Idle(secs)
}
