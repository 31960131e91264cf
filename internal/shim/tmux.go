package shim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// Fixed locations inside an agent container. Operators never need them: the
// runner reaches the pane through `runner-agent capture|status` via the
// engine's exec API.
const (
	// SocketDir is created 0700 by init; only the agent's uid can reach it.
	SocketDir = "/tmp/runner-tmux"
	// DefaultSocket is the tmux server socket (tmux -S).
	DefaultSocket = SocketDir + "/default"
	// SessionName is the one session init creates.
	SessionName = "agent"
	// HistoryLimit is the scrollback kept per pane.
	HistoryLimit = 50000
	// PaneWidth and PaneHeight are the size of the detached session.
	PaneWidth, PaneHeight = 200, 50

	// OptionCommand and OptionPane are tmux user options init sets on the
	// server: the agent's argv as a JSON array, and the agent pane's id (%N).
	OptionCommand = "@runner-command"
	OptionPane    = "@runner-pane"
)

// DefaultTimeout bounds every tmux client invocation.
const DefaultTimeout = 10 * time.Second

// Tmux drives one tmux server through its socket. Every call runs the tmux
// client with an argv (never a shell) and -f /dev/null, so no user or system
// configuration is ever read. It is the only place that talks to tmux,
// message delivery (Paste, Submit, PasteMessage) included.
type Tmux struct {
	// Bin is the tmux binary; "" looks up "tmux" in PATH.
	Bin string
	// Socket is the server socket path (tmux -S).
	Socket string
	// Timeout bounds each invocation; 0 means DefaultTimeout.
	Timeout time.Duration
	// Run runs a prepared command to completion; nil means cmd.Run. Init sets
	// it to Reaper.Run so that, as PID 1, the zombie reaper leaves the exit
	// status of tmux clients to their own Wait.
	Run func(cmd *exec.Cmd) error
	// SubmitDelay is PasteMessage's pause between the paste and Enter;
	// 0 means DefaultSubmitDelay, < 0 none.
	SubmitDelay time.Duration
	// Ctl, if set, carries commands over a persistent control-mode
	// connection instead of a client process each (see Control); a command
	// it cannot send runs as a process as before.
	Ctl *Control
}

// Option is one global option set with `set-option -g NAME VALUE`.
type Option struct {
	Name, Value string
}

// Session describes a detached session to create.
type Session struct {
	Name          string // [A-Za-z0-9_-]+
	Dir           string // start directory; "" = the caller's
	Width, Height int    // 0 = PaneWidth, PaneHeight
	// Argv is run by tmux with execvp. It must have at least two elements:
	// tmux hands a single-element command to `sh -c`, which NewSession
	// refuses rather than allow.
	Argv []string
	// Options are set globally in the same tmux invocation, before the
	// session (and so the command) exists: nothing can exit before
	// remain-on-exit is on.
	Options []Option
}

// PaneState is what tmux reports about one pane.
type PaneState struct {
	ID         string // %N
	Dead       bool   // the process exited and tmux has its status
	ExitStatus *int   // set once the process exited normally
	ExitSignal *int   // set if it was killed by a signal
	PID        int    // the pane's process: runner-agent exec, the agent's parent
	// Closed means tmux saw the pane's terminal close: its process is
	// exiting or gone, even if its exit status is not known yet (Dead).
	Closed bool
	// Activity is when the pane last printed anything (tmux's
	// window_activity: the agent's window has this one pane), to the
	// second; zero if tmux did not say.
	Activity time.Time
}

var sessionNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ErrNoServer means no tmux server answers on the socket.
var ErrNoServer = errors.New("no tmux server running")

// tmuxArg protects one argument from tmux's own command parser. tmux splits
// its argv into a command sequence wherever an argument ends in ';' (it is
// not a shell, but it is a parser): ["echo", "a;", "kill-server"] would run
// kill-server. An argument ending in "\;" has that backslash removed and
// keeps its ';'. So for any argument ending in ';' we insert a backslash
// before the final ';', which round-trips every string exactly (this rule
// has been stable since tmux 1.x; see cmd_parse_from_arguments).
func tmuxArg(s string) string {
	if strings.HasSuffix(s, ";") {
		return s[:len(s)-1] + `\;`
	}
	return s
}

// TmuxArg is tmuxArg for other programs that run a tmux client (runner
// watch on the operator's machine).
func TmuxArg(s string) string { return tmuxArg(s) }

func (t *Tmux) bin() (string, error) {
	if t.Bin != "" {
		return t.Bin, nil
	}
	return exec.LookPath("tmux")
}

// command returns a tmux client invocation running the command sequence
// seq. Separators between commands are added here and only here; every
// element of every command is data and goes through tmuxArg.
func (t *Tmux) command(ctx context.Context, seq [][]string) (*exec.Cmd, error) {
	bin, err := t.bin()
	if err != nil {
		return nil, err
	}
	if t.Socket == "" {
		return nil, errors.New("tmux: no socket path")
	}
	argv := []string{"-u", "-f", "/dev/null", "-S", t.Socket}
	for i, c := range seq {
		if i > 0 {
			argv = append(argv, ";")
		}
		for _, a := range c {
			argv = append(argv, tmuxArg(a))
		}
	}
	cmd := exec.CommandContext(ctx, bin, argv...)
	cmd.WaitDelay = 2 * time.Second
	return cmd, nil
}

// exec runs one tmux command and returns its stdout.
func (t *Tmux) exec(ctx context.Context, args ...string) (string, error) {
	return t.execSeq(ctx, args)
}

// execSeq runs a sequence of tmux commands in one client invocation.
func (t *Tmux) execSeq(ctx context.Context, seq ...[]string) (string, error) {
	return t.execStdin(ctx, nil, seq...)
}

// execStdin runs a sequence of tmux commands in one client invocation, with
// stdin (nil: none) as the client's standard input.
func (t *Tmux) execStdin(ctx context.Context, stdin io.Reader, seq ...[]string) (string, error) {
	timeout := t.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if stdin == nil && t.Ctl != nil {
		out, err := t.Ctl.Run(ctx, seq...)
		if !errors.Is(err, errCtlUnusable) {
			return out, err
		}
	}
	return t.execProc(ctx, timeout, stdin, seq...)
}

// execProc runs seq in one tmux client process.
func (t *Tmux) execProc(ctx context.Context, timeout time.Duration, stdin io.Reader, seq ...[]string) (string, error) {
	name := seq[len(seq)-1][0]
	cmd, err := t.command(ctx, seq)
	if err != nil {
		return "", err
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &stdout, &stderr
	if t.Run != nil {
		err = t.Run(cmd)
	} else {
		err = cmd.Run()
	}
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if strings.HasPrefix(msg, "no server running") || strings.HasPrefix(msg, "error connecting to") {
			return "", fmt.Errorf("%w on %s", ErrNoServer, t.Socket)
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("tmux %s: timed out after %s", name, timeout)
		}
		if msg == "" {
			return "", fmt.Errorf("tmux %s: %v", name, err)
		}
		return "", fmt.Errorf("tmux %s: %s", name, msg)
	}
	return stdout.String(), nil
}

// NewSession sets s.Options globally and creates a detached session running
// s.Argv, all in one tmux invocation (which starts the server if needed). It
// returns the new pane's id.
func (t *Tmux) NewSession(ctx context.Context, s Session) (paneID string, err error) {
	if !sessionNameRE.MatchString(s.Name) {
		return "", fmt.Errorf("tmux session name %q: use letters, digits, '_' and '-'", s.Name)
	}
	if len(s.Argv) < 2 {
		return "", fmt.Errorf("tmux new-session: argv %q has fewer than two elements and tmux would run it through sh -c; wrap it (runner-agent exec -- ...)", s.Argv)
	}
	w, h := s.Width, s.Height
	if w <= 0 {
		w = PaneWidth
	}
	if h <= 0 {
		h = PaneHeight
	}
	var seq [][]string
	for _, o := range s.Options {
		seq = append(seq, []string{"set-option", "-g", "--", o.Name, o.Value})
	}
	ns := []string{"new-session", "-d", "-P", "-F", "#{pane_id}",
		"-s", s.Name, "-x", strconv.Itoa(w), "-y", strconv.Itoa(h)}
	if s.Dir != "" {
		ns = append(ns, "-c", s.Dir)
	}
	ns = append(ns, "--")
	ns = append(ns, s.Argv...)
	out, err := t.execSeq(ctx, append(seq, ns)...)
	if err != nil {
		return "", err
	}
	id := strings.TrimSpace(out)
	if !strings.HasPrefix(id, "%") {
		return "", fmt.Errorf("tmux new-session: unexpected pane id %q", id)
	}
	return id, nil
}

// SetOption sets a global (server and session) option.
func (t *Tmux) SetOption(ctx context.Context, name, value string) error {
	_, err := t.exec(ctx, "set-option", "-g", "--", name, value)
	return err
}

// Option reads a global option's value ("" if unset).
func (t *Tmux) Option(ctx context.Context, name string) (string, error) {
	out, err := t.exec(ctx, "show-options", "-gqv", "--", name)
	return strings.TrimSuffix(out, "\n"), err
}

// ServerPID returns the tmux server's process id.
func (t *Tmux) ServerPID(ctx context.Context) (int, error) {
	out, err := t.exec(ctx, "display-message", "-p", "#{pid}")
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("tmux display-message: unexpected server pid %q", strings.TrimSpace(out))
	}
	return pid, nil
}

// KillServer stops the server; tmux sends SIGHUP to every pane's process.
func (t *Tmux) KillServer(ctx context.Context) error {
	// Always a process: the server never answers a control client's
	// kill-server, it just goes.
	ctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	defer cancel()
	_, err := t.execProc(ctx, DefaultTimeout, nil, []string{"kill-server"})
	return err
}

// PaneState reports on the pane named by target (a pane id such as %0, or
// any tmux target-pane).
//
// Debian's tmux is linked with libutempter, whose own SIGCHLD handler is
// briefly installed while a pane starts; a pane process that exits then is
// never reaped by the server, which goes on showing the pane as alive (or
// dead without a status) until another SIGCHLD arrives (tmux issues #311,
// #4559). So PaneState sends the server a SIGCHLD and asks again, a bounded
// number of times, when the pane's terminal has closed without an exit
// status, or when its process has been a zombie for a while. Not sooner:
// tmux 3.3 drops a pane's unread output if it handles the SIGCHLD first, so
// a nudge must never race the last output of a process that just exited.
func (t *Tmux) PaneState(ctx context.Context, target string) (PaneState, error) {
	start := time.Now()
	for attempt := 0; ; attempt++ {
		st, closed, server, err := t.paneState(ctx, target)
		if err != nil || st.Dead || attempt == 20 {
			return st, err
		}
		zombie := isZombie(st.PID)
		if !closed && !zombie {
			return st, nil
		}
		if closed || time.Since(start) >= zombieGrace {
			NudgeServer(server)
		}
		select {
		case <-ctx.Done():
			return st, nil
		case <-time.After(time.Duration(attempt+1) * 5 * time.Millisecond):
		}
	}
}

// zombieGrace is how long a pane process may stay unreaped before the
// server is nudged: tmux reads a pane's output within milliseconds.
const zombieGrace = 200 * time.Millisecond

func (t *Tmux) paneState(ctx context.Context, target string) (st PaneState, closed bool, server int, err error) {
	out, err := t.exec(ctx, "display-message", "-p", "-t", target,
		"#{pane_id}\t#{pane_dead}\t#{pane_dead_status}\t#{pane_dead_signal}\t#{pane_pid}\t#{pid}\t#{window_activity}")
	if err != nil {
		return PaneState{}, false, 0, err
	}
	f := strings.Split(strings.TrimSuffix(out, "\n"), "\t")
	// tmux 3.3 prints an empty line, exit 0, for a pane id that does not exist.
	if len(f) != 7 || f[0] == "" || (strings.HasPrefix(target, "%") && f[0] != target) {
		return PaneState{}, false, 0, fmt.Errorf("tmux: pane %s not found", target)
	}
	st = PaneState{ID: f[0]}
	st.PID, _ = strconv.Atoi(f[4])
	server, _ = strconv.Atoi(f[5])
	if sec, err := strconv.ParseInt(f[6], 10, 64); err == nil && sec > 0 {
		st.Activity = time.Unix(sec, 0)
	}
	// tmux sets pane_dead as soon as the pane's terminal closes, which comes
	// before it has reaped the process; the pane only counts as dead here
	// once its exit status (or signal) is known.
	closed = f[1] == "1"
	st.Closed = closed
	if closed {
		if n, err := strconv.Atoi(f[2]); err == nil {
			st.ExitStatus = &n
		}
		if n, err := strconv.Atoi(f[3]); err == nil && n > 0 {
			st.ExitSignal = &n
		}
		st.Dead = st.ExitStatus != nil || st.ExitSignal != nil
	}
	return st, closed, server, nil
}

// Respawn starts argv again in the dead pane target, in dir ("" = the
// pane's). Like NewSession's, argv must have at least two elements (tmux
// would hand a single one to sh -c). tmux's respawn-pane clears the pane's
// screen, where the last output of the command that ended and tmux's "Pane
// is dead (status N, ...)" line are; so first, in the same invocation,
// send-keys -R resets the pane's terminal, which moves the screen into the
// scrollback (tmux clears a whole screen into its history). respawn-pane
// without -k refuses a pane whose command still runs: nothing alive is
// ever killed here.
func (t *Tmux) Respawn(ctx context.Context, target, dir string, argv []string) error {
	if len(argv) < 2 {
		return fmt.Errorf("tmux respawn-pane: argv %q has fewer than two elements and tmux would run it through sh -c; wrap it (runner-agent exec -- ...)", argv)
	}
	rp := []string{"respawn-pane", "-t", target}
	if dir != "" {
		rp = append(rp, "-c", dir)
	}
	rp = append(append(rp, "--"), argv...)
	_, err := t.execSeq(ctx, []string{"send-keys", "-R", "-t", target}, rp)
	return err
}

// NudgeServer sends the tmux server a SIGCHLD so it reaps any exited pane
// process it missed (see PaneState for when that is safe). Harmless when
// there is none: the server's handler is a waitpid(WNOHANG) loop.
func NudgeServer(pid int) {
	if pid > 1 {
		_ = syscall.Kill(pid, syscall.SIGCHLD)
	}
}

// isZombie reports whether /proc says pid has exited but is not reaped.
func isZombie(pid int) bool {
	state, _, ok := procStat(pid)
	return ok && state == 'Z'
}

// procStat reads a process's state and parent from /proc/PID/stat.
func procStat(pid int) (state byte, ppid int, ok bool) {
	if pid <= 0 {
		return 0, 0, false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	i := bytes.LastIndexByte(b, ')') // the command name may contain anything
	if i < 0 || i+2 >= len(b) {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 2 {
		return 0, 0, false
	}
	ppid, err = strconv.Atoi(f[1])
	return f[0][0], ppid, err == nil
}

// zombieChildren returns the pids of parent's children that have exited but
// are not reaped.
func zombieChildren(parent int) map[int]bool {
	out := map[int]bool{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if state, ppid, ok := procStat(pid); ok && ppid == parent && state == 'Z' {
			out[pid] = true
		}
	}
	return out
}

// Capture returns the last lines of the pane's text (scrollback and screen),
// wrapped lines joined, trailing blanks removed, and control characters
// stripped so the result is safe to print on an operator's terminal.
// lines <= 0 captures the whole scrollback.
func (t *Tmux) Capture(ctx context.Context, target string, lines int) (string, error) {
	return t.capture(ctx, target, lines, false)
}

// CaptureRaw is Capture with the pane's colours and attributes as escape
// sequences (capture-pane -e), nothing sanitized: for `capture --raw`.
func (t *Tmux) CaptureRaw(ctx context.Context, target string, lines int) (string, error) {
	return t.capture(ctx, target, lines, true)
}

func (t *Tmux) capture(ctx context.Context, target string, lines int, raw bool) (string, error) {
	start := "-"
	if lines > 0 {
		// -S -N: N lines of scrollback plus the screen. That always holds the
		// last N non-blank lines, since trailing blank lines lie on the screen.
		start = "-" + strconv.Itoa(lines)
	}
	args := []string{"capture-pane", "-p", "-J", "-S", start, "-t", target}
	if raw {
		args = append(args, "-e")
	}
	out, err := t.exec(ctx, args...)
	if err != nil {
		return "", err
	}
	if !raw {
		out = sanitize(out)
	}
	ls := strings.Split(out, "\n")
	for i := range ls {
		ls[i] = strings.TrimRight(ls[i], " \t")
	}
	for len(ls) > 0 && ls[len(ls)-1] == "" {
		ls = ls[:len(ls)-1]
	}
	if lines > 0 && len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	if len(ls) == 0 {
		return "", nil
	}
	return strings.Join(ls, "\n") + "\n", nil
}

// sanitize makes s valid UTF-8 and drops C0 controls (but \t and \n), DEL and
// C1 controls, so captured text cannot carry terminal escape sequences.
func sanitize(s string) string {
	s = strings.ToValidUTF8(s, string(utf8.RuneError))
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\t':
			return r
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f):
			return -1
		}
		return r
	}, s)
}
