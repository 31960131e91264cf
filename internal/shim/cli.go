package shim

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

const usage = `usage:
  runner-agent init [--socket PATH] -- COMMAND [ARG...]   container entrypoint (PID 1)
  runner-agent exec [--note TEXT] -- COMMAND [ARG...]     exec COMMAND (what runs in the pane)
  runner-agent capture [--lines N] [--raw] [--framed]     print the agent pane's text
  runner-agent status [--socket PATH]                     print the agent pane's state as JSON
  runner-agent health [--socket PATH]                     the container's health check: exit 0 if tmux and the agent's pane are up, else 1
  runner-agent attach --id ID [--write] | --end ID        an operator's tmux client; end one

messaging (through the run's relay):
  runner-agent send TO MESSAGE        send MESSAGE to agent TO (MESSAGE - reads stdin); prints its id
  runner-agent peers                  list who this agent may send to, one per line
  runner-agent inbox [-n N]           the last N messages delivered here, newest last
  runner-agent schedule DURATION MESSAGE
                                      a check-in to this agent after DURATION (90s, 1.5m, 2h)
`

// Main is the runner-agent command line; it returns the exit code.
// args excludes the program name. Standard input is os.Stdin.
func Main(args []string, stdout, stderr io.Writer) int {
	return MainIO(args, os.Stdin, stdout, stderr)
}

// MainIO is Main with standard input of the caller's choosing.
func MainIO(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ExitUsage
	}
	switch args[0] {
	case "init":
		fs, socket := flags("init", stderr)
		if err := fs.Parse(args[1:]); err != nil {
			return ExitUsage
		}
		return Init(context.Background(), InitConfig{Argv: fs.Args(), Socket: *socket, Stderr: stderr})
	case "exec":
		return ExecMain(args[1:], stdout, stderr)
	case "capture":
		fs, socket := flags("capture", stderr)
		lines := fs.Int("lines", 100, "print the last `N` lines of scrollback and screen (0: all of it)")
		framed := fs.Bool("framed", false, "print a header with the text's length first (what runner reads)")
		raw := fs.Bool("raw", false, "keep colours and attributes as escape sequences")
		if err := fs.Parse(args[1:]); err != nil || fs.NArg() != 0 {
			return ExitUsage
		}
		return capture(stdout, stderr, *socket, *lines, *framed, *raw)
	case "status":
		fs, socket := flags("status", stderr)
		if err := fs.Parse(args[1:]); err != nil || fs.NArg() != 0 {
			return ExitUsage
		}
		return status(stdout, stderr, *socket)
	case "health":
		fs, socket := flags("health", stderr)
		if err := fs.Parse(args[1:]); err != nil || fs.NArg() != 0 {
			return ExitUsage
		}
		return health(stdout, *socket)
	case "stream":
		return cmdStream(args[1:], stdin, stdout, stderr)
	case "attach":
		return cmdAttach(args[1:], stderr)
	case "send":
		return cmdSend(args[1:], stdin, stdout, stderr)
	case "peers":
		return cmdPeers(args[1:], stdout, stderr)
	case "inbox":
		return cmdInbox(args[1:], stdout, stderr)
	case "schedule":
		return cmdSchedule(args[1:], stdout, stderr, time.Now)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "runner-agent: unknown command %q\n%s", args[0], usage)
	return ExitUsage
}

func flags(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("runner-agent "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("socket", DefaultSocket, "tmux server socket (for tests and debugging)")
	return fs, socket
}

// agentPane is the pane init created; "=agent:" if the option is missing.
func agentPane(ctx context.Context, t *Tmux) (string, error) {
	id, err := t.Option(ctx, OptionPane)
	if err != nil {
		return "", err
	}
	if id == "" {
		return "=" + SessionName + ":", nil
	}
	return id, nil
}

// CaptureHeader starts `runner-agent capture --framed` output: the header
// is CaptureHeader, the text's length in bytes and a newline, then exactly
// that text, then nothing. The runner rejects anything else, so bytes
// written into the helper's output by someone else do not pass silently.
const CaptureHeader = "runner-agent capture v1 "

func capture(stdout, stderr io.Writer, socket string, lines int, framed, raw bool) int {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	t := &Tmux{Socket: socket}
	pane, err := agentPane(ctx, t)
	if err == nil {
		var text string
		if raw {
			text, err = t.CaptureRaw(ctx, pane, lines)
		} else {
			text, err = t.Capture(ctx, pane, lines)
		}
		if err == nil {
			if framed {
				text = CaptureHeader + strconv.Itoa(len(text)) + "\n" + text
			}
			io.WriteString(stdout, text)
			return 0
		}
	}
	fmt.Fprintf(stderr, "runner-agent: capture: %v\n", err)
	return 1
}

// Status is the JSON `runner-agent status` prints (one line).
type Status struct {
	Tmux       bool     `json:"tmux"`        // a tmux server answers on the socket
	PaneDead   bool     `json:"pane_dead"`   // the agent's command has exited
	ExitStatus *int     `json:"exit_status"` // its exit status once dead (null if alive or killed by a signal)
	ExitSignal *int     `json:"exit_signal"` // the signal that killed it, if any
	PID        *int     `json:"pid"`         // the agent's process id (the pane's process)
	Command    []string `json:"command"`     // the argv init was given
	// Relay is message delivery into the pane: "connected", "connecting",
	// "waiting: pane exited" (messages wait at the relay), or "off".
	Relay string `json:"relay"`
	// Restart is init's restart policy ("on-failure:5"; "" if it has none),
	// Restarts how often it restarted the command, Restarting whether the
	// command exited and is about to be started again (pane_dead is then
	// true too).
	Restart    string `json:"restart,omitempty"`
	Restarts   int    `json:"restarts"`
	Restarting bool   `json:"restarting"`
	// FirstRunMS is how long the command's first run lasted, once it
	// ended (absent while the first run goes on).
	FirstRunMS *int64 `json:"first_run_ms,omitempty"`
	// IdleS is how many seconds ago the pane last printed anything.
	IdleS *int64 `json:"idle_s"`
	Error string `json:"error,omitempty"`
}

// ReadStatus asks the tmux server on socket about the agent pane.
func ReadStatus(ctx context.Context, t *Tmux) Status {
	st := Status{Relay: readRelayState(t.Socket)}
	pane, err := agentPane(ctx, t)
	if err != nil {
		if !errors.Is(err, ErrNoServer) {
			st.Error = err.Error()
		} else {
			st.Error = "no tmux server running on " + t.Socket
		}
		return st
	}
	st.Tmux = true
	ps, err := t.PaneState(ctx, pane)
	// The command is read after the pane: init sets it in the invocation
	// that creates the session, so once the pane exists it is there (read
	// first, it could predate the session and the pane be dead already).
	c, cerr := t.Option(ctx, OptionCommand)
	if cerr == nil && c != "" {
		if jerr := json.Unmarshal([]byte(c), &st.Command); jerr != nil {
			cerr = fmt.Errorf("option %s: %w", OptionCommand, jerr)
		}
	}
	if err == nil {
		err = cerr
	}
	if err != nil {
		st.Error = err.Error()
		if ps.ID == "" {
			return st
		}
	}
	st.PaneDead, st.ExitStatus, st.ExitSignal = ps.Dead, ps.ExitStatus, ps.ExitSignal
	if ps.PID > 0 {
		st.PID = &ps.PID
	}
	st.addSupervisor(t.Socket, ps, time.Now())
	return st
}

// status prints the JSON; if the pane cannot be read it also says why on
// stderr and exits 1 (the JSON is still printed, with "tmux":false if no
// server answers).
func status(stdout, stderr io.Writer, socket string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	st := ReadStatus(ctx, &Tmux{Socket: socket})
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(st) // one line
	if !st.Tmux || st.Error != "" {
		fmt.Fprintf(stderr, "runner-agent: status: %s\n", st.Error)
		return 1
	}
	return 0
}

// Run is main for cmd/runner-agent.
func Run() {
	// Not dumpable, so the agent (same uid) cannot open this process's
	// /proc/PID/fd or trace it. Where runner-agent is execute-only (runc)
	// the kernel already made it so at exec; gVisor runs the readable copy
	// (image.AgentPathReadable), and this is its protection.
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
}
