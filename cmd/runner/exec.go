package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"

	"golang.org/x/term"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/runner"
)

// cmdExec is `runner exec FILE AGENT -- ARGV...`: the command runs in the
// agent's container as the agent's user, on a TTY when standard input is
// one, audited; its exit status is runner's.
func cmdExec(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	var noTTY bool
	// What follows -- is the command's, flags included.
	var argv []string
	if i := slices.Index(args, "--"); i >= 0 {
		args, argv = args[:i], args[i+1:]
	}
	cfg, rest, err := fileCommand(g, "exec", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&noTTY, "T", false, "no TTY, even on a terminal (output as plain text)")
	}, 1, "")
	if err != nil {
		return err
	}
	if len(argv) == 0 {
		fmt.Fprintln(stderr, "Error: no command given: put it after --, as in `runner exec agents.hcl alice -- git status`")
		return exitError{2}
	}
	return execIn(ctx, g, cfg, rest[0], argv, !noTTY, stdout, stderr)
}

// cmdShell is `runner shell FILE AGENT`: exec of the image's /bin/sh, on
// the terminal it needs.
func cmdShell(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	cfg, rest, err := fileCommand(g, "shell", args, stderr, nil, 1, "")
	if err != nil {
		return err
	}
	out, ok := stdout.(*os.File)
	if !term.IsTerminal(int(os.Stdin.Fd())) || !ok || !term.IsTerminal(int(out.Fd())) {
		fmt.Fprintf(stderr, "Error: runner shell needs a terminal; to run one command, use `runner exec %s %s -- COMMAND`\n", cfg.File, rest[0])
		return exitError{1}
	}
	return execIn(ctx, g, cfg, rest[0], []string{"/bin/sh"}, true, stdout, stderr)
}

func execIn(ctx context.Context, g *globals, cfg *config.Config, agent string, argv []string, wantTTY bool, stdout, stderr io.Writer) error {
	eng, err := connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer eng.Close()
	// A TTY only for a terminal at both ends: piped, the output stays plain
	// text (and the command sees no terminal), as `docker exec` without -t.
	fd := int(os.Stdin.Fd())
	out, outIsFile := stdout.(*os.File)
	tty := wantTTY && term.IsTerminal(fd) && outIsFile && term.IsTerminal(int(out.Fd()))
	o := runner.ExecOptions{Argv: argv, TTY: tty, Term: os.Getenv("TERM"), In: os.Stdin, Out: stdout, Err: stderr}
	if tty {
		old, err := term.MakeRaw(fd)
		if err != nil {
			return err
		}
		defer term.Restore(fd, old)
		var stop func()
		o.Size, o.Resized, stop = followSize(out, 24, 80)
		defer stop()
	}
	code, err := newRunner(g, eng, nil).Exec(ctx, cfg, agent, o)
	if err != nil {
		return err
	}
	if code != 0 {
		return exitError{code}
	}
	return nil
}
