package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/runner"
)

// target is the run a command acts on: from its FILE, or with --run NAME
// from the engine's labels and the state directory (compose's -p NAME), so
// a run whose file changed, was renamed or is gone can still be inspected
// and destroyed.
type target struct {
	cfg  *config.Config
	rest []string      // the positional arguments after FILE
	eng  engine.Engine // nil unless connected
	// byName is --run: cfg was rebuilt from what is deployed.
	byName string
}

func (t target) close() {
	if t.eng != nil {
		t.eng.Close()
	}
}

// fileArg is how commands started from this one (watch's panes, messages)
// name the run: its FILE, or --run NAME.
func (t target) fileArg() []string {
	if t.byName != "" {
		return []string{"--run", t.byName}
	}
	return []string{t.cfg.File}
}

// runTarget parses a command that acts on a run: FILE ARGS... or
// --run NAME ARGS... (nargs arguments after FILE). It connects to the
// engine when needEngine is set, and always for --run (the labels are
// there), except that a command that needs no engine (audit, logs) goes on
// from the state directory alone when the engine cannot be reached.
func runTarget(ctx context.Context, g *globals, name string, args []string, stderr io.Writer, extra func(*flag.FlagSet), nargs int, needEngine ...bool) (target, error) {
	var byName string
	withRun := func(fs *flag.FlagSet) {
		fs.StringVar(&byName, "run", "", "act on the run `NAME` instead of a FILE's (found from the engine's labels and the state directory, as runner ls lists them)")
		if extra != nil {
			extra(fs)
		}
	}
	engineNeeded := len(needEngine) == 0 || needEngine[0]
	if !hasRunFlag(args) {
		cfg, rest, err := fileCommand(g, name, args, stderr, withRun, nargs, "")
		if err != nil {
			return target{}, err
		}
		t := target{cfg: cfg, rest: rest}
		if engineNeeded {
			if t.eng, err = connect(ctx, cfg); err != nil {
				return target{}, err
			}
		}
		return t, nil
	}
	fs := g.newFlags(name, stderr)
	withRun(fs)
	pos, err := g.parseFlags(fs, name, args, stderr)
	if err != nil {
		return target{}, err
	}
	if byName == "" || len(pos) != nargs && !(g.lastOptional && len(pos) == nargs-1) {
		usageLine(stderr, name)
		fmt.Fprintf(stderr, "With --run NAME, leave out FILE: runner %s --run NAME%s\n", name, argsAfterFile(name))
		return target{}, exitError{2}
	}
	g.setupLog(stderr)
	t := target{rest: pos, byName: byName}
	// The engine the run was applied on from this host (its applied.json).
	eng, cerr := connect(ctx, &config.Config{Run: config.Run{Engine: runner.EngineOf(byName)}})
	if cerr != nil && engineNeeded {
		return target{}, cerr
	}
	if cerr == nil {
		t.eng = eng
	}
	r := &runner.Runner{Engine: t.eng, Log: g.log}
	if t.cfg, err = r.ConfigForRun(ctx, byName); err != nil {
		t.close()
		return target{}, err
	}
	if c, _ := lookup(name); strings.HasPrefix(c.args, "FILE AGENT") && !agentGlob(name, pos[0]) {
		if err := runner.CheckAgent(t.cfg, pos[0]); err != nil {
			t.close()
			return target{}, err
		}
	}
	return t, nil
}

// hasRunFlag reports whether args give --run (or -run) before a "--".
func hasRunFlag(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "--run" || a == "-run" || strings.HasPrefix(a, "--run=") || strings.HasPrefix(a, "-run=") {
			return true
		}
	}
	return false
}

// argsAfterFile is the command's arguments as its table row says them.
func argsAfterFile(name string) string {
	c, _ := lookup(name)
	return " " + strings.TrimSpace(strings.TrimPrefix(c.args, "FILE"))
}
