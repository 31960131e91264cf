package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"golang.org/x/term"

	"github.com/runner-dev/runner/internal/shim"
	"github.com/runner-dev/runner/runner"
)

func cmdAttach(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	var write bool
	t, err := runTarget(ctx, g, "attach", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&write, "write", false, "let your keystrokes reach the agent (recorded in the audit log)")
	}, 1, false)
	if err != nil {
		return err
	}
	defer t.close()
	cfg, rest := t.cfg, t.rest
	// A terminal view is only for a terminal: piped, it would be a stream
	// of escape codes. capture and logs are the commands for a pipe.
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		name := strings.Join(t.fileArg(), " ")
		fmt.Fprintf(stderr, "Error: runner attach needs a terminal on standard input (it shows the live pane); for text, use `runner capture %s %s` or `runner logs %s %s -f`\n", name, rest[0], name, rest[0])
		return exitError{1}
	}
	eng := t.eng
	if eng == nil {
		if eng, err = connect(ctx, cfg); err != nil {
			return err
		}
		defer eng.Close()
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	o := runner.AttachOptions{Write: write, Out: stdout, Term: os.Getenv("TERM")}
	var restore func()
	defer func() {
		if restore != nil {
			restore()
		}
	}()
	// Said once the agent's container was found, and before the terminal
	// goes raw: stderr is plain text, without \r.
	o.Started = func() error {
		if write {
			fmt.Fprintf(stderr, "Attached to %s with WRITE access (audited). Detach: Ctrl-b d.\n", rest[0])
		} else {
			fmt.Fprintf(stderr, "Attached to %s read-only: keys are not sent. Detach: Ctrl-b d, Ctrl-c or q.\n", rest[0])
		}
		old, err := term.MakeRaw(fd)
		if err != nil {
			return err
		}
		restore = func() { term.Restore(fd, old) }
		return nil
	}
	if out, ok := stdout.(*os.File); ok && term.IsTerminal(int(out.Fd())) {
		var stop func()
		o.Size, o.Resized, stop = followSize(out, 50, 200)
		defer stop()
	}
	if write {
		o.In = os.Stdin
	} else {
		// Keys are read here and never forwarded; only the detach keys
		// mean anything.
		go func() {
			buf := make([]byte, 64)
			prefix := false
			for {
				n, err := os.Stdin.Read(buf)
				if err != nil {
					return
				}
				for _, b := range buf[:n] {
					switch {
					case b == 0x03 || b == 'q' || (prefix && b == 'd'):
						cancel()
						return
					}
					prefix = b == 0x02
				}
			}
		}()
	}
	return newRunner(g, eng, nil).Attach(ctx, cfg, rest[0], o)
}

// watchLabel is the pane option that names a watch pane's agent.
const watchLabel = "@runner_agent"

// cmdWatch opens a local tmux session with one read-only pane per agent,
// each running `runner attach FILE AGENT`. Closing it touches no agent.
func cmdWatch(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	var detach bool
	t, err := runTarget(ctx, g, "watch", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&detach, "detach", false, "create the watch session but do not attach to it")
	}, 0, false)
	if err != nil {
		return err
	}
	defer t.close()
	cfg := t.cfg
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		return fmt.Errorf("runner watch needs tmux on this machine: install it (apt-get install tmux)")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	session := "runner-watch-" + cfg.Run.Name
	run := func(a ...string) (string, error) {
		for i := range a {
			a[i] = shim.TmuxArg(a[i])
		}
		out, err := exec.CommandContext(ctx, tmux, a...).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("tmux %s: %v: %s", strings.Join(a, " "), err, strings.TrimSpace(string(out)))
		}
		return strings.TrimSpace(string(out)), nil
	}
	if _, err := run("has-session", "-t", "="+session); err == nil {
		fmt.Fprintf(stderr, "Watch session %s exists; attaching to it.\n", session)
	} else {
		// A tmux server of the operator's own keeps its clipboard setting;
		// one this command starts has none.
		_, serverErr := run("list-sessions")
		attach := func(agent string) []string {
			argv := append([]string{"--", self, "attach"}, append(t.fileArg(), agent)...)
			for k, v := range g.vars {
				argv = append(argv, "-var", k+"="+v)
			}
			for _, f := range *g.varFiles.files {
				argv = append(argv, "-var-file", f)
			}
			return argv
		}
		for i, a := range cfg.Agents {
			var pane string
			if i == 0 {
				pane, err = run(append([]string{"new-session", "-d", "-P", "-F", "#{pane_id}", "-s", session, "-x", "200", "-y", "50"}, attach(a.Name)...)...)
			} else {
				pane, err = run(append([]string{"split-window", "-P", "-F", "#{pane_id}", "-t", session}, attach(a.Name)...)...)
				if err == nil {
					_, err = run("select-layout", "-t", session, "tiled")
				}
			}
			if err != nil {
				return err
			}
			// The label is a pane user option: what a pane prints can set
			// its title (OSC 2) but not this.
			if _, err := run("set-option", "-p", "-t", pane, watchLabel, a.Name); err != nil {
				return err
			}
			if _, err := run("select-pane", "-t", pane, "-T", a.Name); err != nil {
				return err
			}
		}
		// Panes show termsafe views already; these keep tmux itself from
		// passing anything on if something got through.
		for _, opt := range [][]string{
			{"-t", session, "pane-border-status", "top"},
			{"-t", session, "pane-border-format", " #{" + watchLabel + "} "},
			{"-w", "-t", session, "allow-rename", "off"},
			{"-w", "-t", session, "allow-passthrough", "off"},
		} {
			if _, err := run(append([]string{"set-option"}, opt...)...); err != nil {
				return err
			}
		}
		if serverErr != nil {
			if _, err := run("set-option", "-s", "set-clipboard", "off"); err != nil {
				return err
			}
		}
	}
	if detach {
		fmt.Fprintf(stdout, "Watch session %s: one read-only pane per agent. Attach with: %s\n", session, watchAttachHint(os.Getenv("TMUX"), session))
		return nil
	}
	cmd := exec.CommandContext(ctx, tmux, "attach-session", "-t", session)
	if os.Getenv("TMUX") != "" {
		cmd = exec.CommandContext(ctx, tmux, "switch-client", "-t", session)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	return cmd.Run()
}

// followSize reports the size of the terminal out (rows, cols; def* when it
// cannot be read) and signals each SIGWINCH on resized, until stop.
func followSize(out *os.File, defRows, defCols uint) (size func() (uint, uint), resized <-chan struct{}, stop func()) {
	size = func() (uint, uint) {
		w, h, err := term.GetSize(int(out.Fd()))
		if err != nil || w <= 0 || h <= 0 {
			return defRows, defCols
		}
		return uint(h), uint(w)
	}
	ch := make(chan struct{}, 1)
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	go func() {
		for range winch {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	return size, ch, func() { signal.Stop(winch); close(winch) }
}

// watchAttachHint is the command that attaches to the watch session. Inside
// tmux the session is made on the server of $TMUX (tmux's own rule), which
// may be a -L/-S socket of the operator's: the hint names it.
func watchAttachHint(tmuxEnv, session string) string {
	if sock, _, _ := strings.Cut(tmuxEnv, ","); sock != "" {
		return fmt.Sprintf("tmux -S %s attach -t %s", sock, session)
	}
	return "tmux attach -t " + session
}
