package shim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Exit codes of `runner-agent init`.
const (
	ExitStopped       = 0   // stopped by SIGTERM/SIGINT/SIGHUP; tmux server killed cleanly
	ExitServerDied    = 1   // the tmux server died, or could not be started
	ExitUsage         = 2   // bad command line
	ExitTmuxMissing   = 127 // no tmux in the image
	ExitNotFound      = 127 // exec: command not found
	ExitNotExecutable = 126 // exec: found but could not be executed
)

// InitConfig is what Init needs. Zero values are filled with the container
// defaults.
type InitConfig struct {
	Argv    []string  // the agent's command; required
	Socket  string    // default DefaultSocket
	Self    string    // path of runner-agent, run in the pane; default os.Executable()
	TmuxBin string    // default: "tmux" looked up in PATH
	Stderr  io.Writer // default os.Stderr
	// Restart is the restart policy (see ParseRestartPolicy); "" reads
	// EnvRestart, and without it the command is never restarted.
	Restart string
	// StopTimeout bounds the clean shutdown after SIGTERM; default 5s.
	StopTimeout time.Duration
	// PollInterval is how often the tmux server's liveness is checked besides
	// reaping it, and the server nudged to reap its panes; default 1s.
	PollInterval time.Duration
	// Egress is the egress forwarder to start before the command; nil
	// means one with the container defaults when EnvEgress is "1", else none.
	Egress *EgressForwarder
}

// TmuxMissingMessage is printed, alone on a line, when the image has no tmux.
const TmuxMissingMessage = "runner-agent: tmux not found in image (PATH=%s): build the default image with 'runner image build' or install tmux"

// Init is the container's PID 1: it starts the agent's command in a detached
// tmux session and stays alive while the tmux server lives, reaping orphans.
// It returns the process exit code. It works the same when not PID 1 (it then
// makes itself a child subreaper), which is how it is tested.
func Init(ctx context.Context, cfg InitConfig) int {
	stderr := cfg.Stderr
	if stderr == nil {
		stderr = os.Stderr
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "runner-agent: "+format+"\n", a...) }

	if len(cfg.Argv) == 0 {
		logf("init: no command given: usage: runner-agent init -- COMMAND [ARG...]")
		return ExitUsage
	}
	tmuxBin := cfg.TmuxBin
	if tmuxBin == "" {
		var err error
		if tmuxBin, err = exec.LookPath("tmux"); err != nil {
			fmt.Fprintf(stderr, TmuxMissingMessage+"\n", os.Getenv("PATH"))
			return ExitTmuxMissing
		}
	}
	self := cfg.Self
	if self == "" {
		var err error
		if self, err = os.Executable(); err != nil {
			logf("init: cannot find my own executable: %v", err)
			return ExitServerDied
		}
	}
	socket := cfg.Socket
	if socket == "" {
		socket = DefaultSocket
	}
	stopTimeout := cfg.StopTimeout
	if stopTimeout <= 0 {
		stopTimeout = 5 * time.Second
	}
	poll := cfg.PollInterval
	if poll <= 0 {
		poll = time.Second
	}

	// Orphans (the daemonized tmux server first of all) must come back to us
	// even when we are not PID 1.
	if os.Getpid() != 1 {
		_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(stop)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	reaper := NewReaper()
	var (
		mu         sync.Mutex
		serverPID  int
		serverGone = make(chan syscall.WaitStatus, 1)
	)
	go reaper.Loop(ctx, func(z Reaped) {
		mu.Lock()
		defer mu.Unlock()
		if serverPID != 0 && z.PID == serverPID {
			select {
			case serverGone <- z.Status:
			default:
			}
		}
	})

	if err := prepareSocketDir(filepath.Dir(socket)); err != nil {
		logf("init: %v", err)
		return ExitServerDied
	}
	// The forwarder listens before the command starts, so the agent's
	// first request finds it. Without it the agent runs with no way out.
	fwd := cfg.Egress
	if fwd == nil && egressEnabled() {
		fwd = &EgressForwarder{}
	}
	if fwd != nil {
		fwd.Logf = logf
		if err := fwd.Start(ctx); err != nil {
			logf("init: egress forwarder: %v: the agent has no egress", err)
		} else {
			defer fwd.Close()
			logf("egress: forwarding %s to the egress proxy at %s", fwd.Addr(), fwd.Socket)
		}
	}
	t := &Tmux{Bin: tmuxBin, Socket: socket, Run: reaper.Run}
	cmdJSON := marshalArgv(cfg.Argv)
	opts := []Option{
		{"remain-on-exit", "on"},
		{"history-limit", strconv.Itoa(HistoryLimit)},
		{OptionCommand, string(cmdJSON)},
	}
	if term := defaultTerminal(); term != "" {
		opts = append(opts, Option{"default-terminal", term})
	}
	dir, _ := os.Getwd()
	argv := append([]string{self, "exec", "--"}, cfg.Argv...)
	pane, err := t.NewSession(ctx, Session{Name: SessionName, Dir: dir, Argv: argv, Options: opts})
	if err != nil {
		logf("init: cannot start tmux: %v", err)
		return ExitServerDied
	}
	if err := t.SetOption(ctx, OptionPane, pane); err != nil {
		logf("init: %v", err)
	}
	pid, err := t.ServerPID(ctx)
	if err != nil {
		logf("init: tmux server did not stay up: %v", err)
		return ExitServerDied
	}
	mu.Lock()
	serverPID = pid
	mu.Unlock()
	reaper.Kick() // in case it was reaped before we knew its pid
	// From here on, tmux commands go over one control-mode connection.
	t.Ctl = &Control{Bin: tmuxBin, Socket: socket, Session: SessionName, Start: reaper.Start, Wait: reaper.Wait, Watch: PaneWatch}
	defer t.Ctl.Close()
	// The recorder's `runner-agent stream` is served from a connection of
	// its own: a snapshot puts pane text (the agent's to choose) inside a
	// reply, which could forge the end of that reply and the answers after
	// it; on its own connection that misleads only the agent's stream, never
	// the answers delivery and supervision act on.
	streamCtl := &Control{Bin: tmuxBin, Socket: socket, Session: SessionName, Start: reaper.Start, Wait: reaper.Wait}
	defer streamCtl.Close()
	streams := &StreamServer{Ctl: streamCtl, Pane: pane, Path: filepath.Join(filepath.Dir(socket), StreamSocketName), Logf: logf}
	streamCtl.OnOutput, streamCtl.OnLost = streams.Output, streams.Lost
	if err := streams.Listen(ctx); err != nil {
		logf("init: cannot serve the pane's stream (%v): runner-agent stream runs its own tmux client", err)
	}
	defer streams.Close()
	logf("started %s in tmux session %q (pane %s, server pid %d, socket %s)", cmdJSON, SessionName, pane, pid, socket)

	// Messages from the relay, pasted into the pane (see Deliverer.Run);
	// restarts and idle reports (see Supervisor). Both stop before the
	// tmux server does.
	dctx, stopDelivery := context.WithCancel(ctx)
	defer stopDelivery()
	sup := &Supervisor{Tmux: t, Pane: pane, Self: self, Argv: cfg.Argv, Dir: dir,
		StateFile: supervisorStatePath(socket), Logf: logf, Poll: poll}
	restart := cfg.Restart
	if restart == "" {
		restart = os.Getenv(EnvRestart)
	}
	if sup.Policy, err = ParseRestartPolicy(restart); err != nil {
		logf("%v: the command is not restarted", err)
	}
	if d := startDelivery(dctx, t, pane, logf); d != nil {
		sup.IdleAfter, sup.ReportIdle = d.IdleAfter, reportIdle
	} else {
		rs, rc := RelayPaths()
		logf("no relay (%s) or credential (%s) in this container: message delivery is off", rs, rc)
	}
	go sup.Run(dctx)

	// The tick is a safety net for what tmux can miss (see PaneState);
	// while the control connection watches the pane (and the supervisor
	// its process), it is slow.
	tick := time.NewTimer(poll)
	defer tick.Stop()
	zombies := map[int]bool{}
	for {
		select {
		case sig := <-stop:
			stopDelivery()
			t.Ctl.Close()
			logf("received %v: stopping the tmux server", sig)
			kctx, kcancel := context.WithTimeout(context.Background(), stopTimeout)
			err := t.KillServer(kctx)
			if err != nil && !errors.Is(err, ErrNoServer) {
				logf("tmux kill-server: %v", err)
			}
			select {
			case <-serverGone:
			case <-waitGone(kctx, pid, poll/4):
			case <-kctx.Done():
				logf("tmux server (pid %d) still running after %s: killing it", pid, stopTimeout)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			// tmux sent SIGHUP to the pane; give what is left (re-parented
			// to us) the rest of the timeout to exit, so agents can finish
			// writing. As PID 1, SIGTERM whatever the SIGHUP did not reach
			// (kill(-1) in a pid namespace reaches only its processes).
			if os.Getpid() == 1 {
				_ = syscall.Kill(-1, syscall.SIGTERM)
			}
			if !waitNoChildren(kctx, reaper) {
				logf("processes still running after %s: exiting anyway", stopTimeout)
			}
			kcancel()
			return ExitStopped
		case ws := <-serverGone:
			logf("tmux server (pid %d) exited (%s): the agent's session is gone", pid, describeWait(ws))
			return ExitServerDied
		case <-tick.C:
			if t.Ctl.Watching() {
				tick.Reset(quietCheck)
			} else {
				tick.Reset(poll)
			}
			reaper.Kick()
			// tmux can miss a pane's SIGCHLD (see PaneState): nudge it about
			// a zombie seen on two ticks in a row, long after its output
			// was read.
			z := zombieChildren(pid)
			for zp := range z {
				if zombies[zp] {
					NudgeServer(pid)
					break
				}
			}
			zombies = z
			if !alive(pid) {
				logf("tmux server (pid %d) is gone: the agent's session is gone", pid)
				return ExitServerDied
			}
		case <-ctx.Done():
			_ = t.KillServer(context.Background())
			return ExitStopped
		}
	}
}

// marshalArgv is argv as JSON, with &, < and > left as they are.
func marshalArgv(argv []string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(argv)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// prepareSocketDir creates dir 0700 or checks that an existing one is a real
// directory owned by us, and makes it 0700.
func prepareSocketDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("tmux socket directory: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("tmux socket directory: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("tmux socket directory %s is not a directory owned by uid %d", dir, os.Geteuid())
	}
	return os.Chmod(dir, 0o700)
}

// waitNoChildren reaps until this process has no children left, or ctx ends.
func waitNoChildren(ctx context.Context, r *Reaper) bool {
	for {
		r.Kick()
		if !hasChildren() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// hasChildren reports whether this process has any child, exited or not.
func hasChildren() bool {
	var info unix.Siginfo
	err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	return !errors.Is(err, unix.ECHILD)
}

// alive reports whether pid exists (a zombie still counts until reaped).
func alive(pid int) bool {
	return syscall.Kill(pid, 0) != syscall.ESRCH
}

// waitGone closes the returned channel once pid no longer exists, for when
// the server is not our child and so never reaped by us.
func waitGone(ctx context.Context, pid int, every time.Duration) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if !alive(pid) {
				close(done)
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return done
}

func describeWait(ws syscall.WaitStatus) string {
	if ws.Signaled() {
		return "killed by " + ws.Signal().String()
	}
	return "exit status " + strconv.Itoa(ws.ExitStatus())
}

// terminfoDirs is ncurses' search path on Debian-like systems.
var terminfoDirs = []string{"/etc/terminfo", "/lib/terminfo", "/usr/share/terminfo"}

// defaultTerminal picks the TERM panes get: tmux-256color when its terminfo
// entry exists, otherwise the best older one; "" leaves tmux's default.
func defaultTerminal() string {
	dirs := terminfoDirs
	if d := os.Getenv("TERMINFO"); d != "" {
		dirs = append([]string{d}, dirs...)
	}
	for _, name := range []string{"tmux-256color", "screen-256color", "screen"} {
		for _, d := range dirs {
			if _, err := os.Stat(filepath.Join(d, name[:1], name)); err == nil {
				return name
			}
		}
	}
	return ""
}
