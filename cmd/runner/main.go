// Command runner runs teams of AI coding agents in locked-down containers.
// main only parses flags and wires packages together; the work is in
// runner/ and internal/.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"

	"github.com/runner-dev/runner/internal/termsafe"
)

const usage = `Usage: runner [global flags] COMMAND [args]

Commands that act on a run take the config file first; the run name comes from it.

  validate FILE                 check a config file without touching an engine
  plan     FILE                 show what apply would create, replace (and why), delete, keep
  apply    FILE                 create or update the run's agents (a second apply is a no-op)
  status   FILE [-o json]       each agent: container, state (and health), process, security, uptime
  capture  FILE AGENT [--lines N]   print a snapshot of the agent's tmux pane (read-only)
  attach   FILE AGENT [--write] live view of the agent's pane; keys reach it only with --write (audited)
  watch    FILE [--detach]      a local tmux session with one read-only pane per agent
  logs     FILE AGENT [-f] [--since 10m] [--raw] [--verify]   everything the agent's pane printed (recorded on this host); --verify checks its hash chain
  send     FILE AGENT MESSAGE   send a message to an agent as the operator ("-" reads stdin)
  inbox    FILE [-o json] [--keep]   print the agents' messages to the operator, and remove them
  audit    FILE [--verify]      print the run's audit log, or check its hash chain
  egress check FILE AGENT HOST[:PORT]|URL [-o json]   would the agent's rules allow it, and which entry decides (nothing is dialled; exit 0 allowed, 1 denied, 2 trouble)
  run      FILE [--timeout D] [-o text|json|junit] [--junit-file P]  CI job: apply, wait, print output, destroy
  destroy  FILE                 remove the run's containers, relay and state (idempotent)
  doctor                        check the engine: reachable, rootless, seccomp, cgroups, limits
  image build [--tag REF]       build the default agent image from this machine's files (no registry)
  version                       print the version

Flags for FILE commands: -var NAME=VALUE (repeatable)
Global flags: --log-level (trace|debug|info|warn|error, default warn), --log-json
`

// exitError carries a process exit code; the message has been printed.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	var ee exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		os.Exit(ee.code)
	default:
		// Errors may quote what a container said.
		fmt.Fprintln(os.Stderr, "Error:", termsafe.Line(err.Error()))
		os.Exit(1)
	}
}

// globals are flags every command accepts.
type globals struct {
	logLevel string
	logJSON  bool
	vars     varFlags
	log      hclog.Logger
	// files are the sources the config loader parsed, for diagnostics
	// found after loading (the mount-source stage).
	files map[string]*hcl.File
}

type varFlags map[string]string

func (v varFlags) String() string { return "" }

func (v varFlags) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return fmt.Errorf("-var wants NAME=VALUE, got %q", s)
	}
	v[name] = value
	return nil
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.logLevel, "log-level", "warn", "log level: trace, debug, info, warn, error")
	fs.BoolVar(&g.logJSON, "log-json", false, "log as JSON lines")
	fs.Var(g.vars, "var", "set a config variable, NAME=VALUE (repeatable)")
}

// parse accepts flags before and after positional arguments, as people
// type `runner capture agents.hcl alice --lines 20`.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

type command struct {
	summary string
	run     func(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{
	"validate": {"check a config file", cmdValidate},
	"plan":     {"show what apply would do", cmdPlan},
	"apply":    {"create or update the run", cmdApply},
	"status":   {"show the run's agents", cmdStatus},
	"capture":  {"print an agent's pane", cmdCapture},
	"destroy":  {"remove the run", cmdDestroy},
	"run":      {"run the file as a CI job", cmdRun},
	"doctor":   {"check the engine", cmdDoctor},
	"image":    {"build the default agent image", cmdImage},
	"version":  {"print the version", cmdVersion},
	"send":     {"send a message to an agent", cmdSend},
	"inbox":    {"print (and remove) the agents' messages to the operator", cmdInbox},
	"audit":    {"print or verify the run's audit log", cmdAudit},
	"relay":    {"run a relay (started by apply)", cmdRelay},
	"attach":   {"watch an agent's pane live", cmdAttach},
	"watch":    {"watch every agent's pane at once", cmdWatch},
	"logs":     {"print an agent's transcript", cmdLogs},
	"record":   {"record the run's transcripts (started by apply)", cmdRecord},
	"egress":   {"check what an agent's egress rules allow", cmdEgress},
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	g := &globals{vars: varFlags{}}
	top := flag.NewFlagSet("runner", flag.ContinueOnError)
	top.SetOutput(stderr)
	top.Usage = func() { fmt.Fprint(stderr, usage) }
	g.register(top)
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return exitError{2}
	}
	args = top.Args()
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitError{2}
	}
	name := args[0]
	if name == "help" || name == "-h" || name == "--help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	cmd, ok := commands[name]
	if !ok {
		var known []string
		for k := range commands {
			known = append(known, k)
		}
		sort.Strings(known)
		fmt.Fprintf(stderr, "Error: unknown command %q; commands: %s (see runner --help)\n", name, strings.Join(known, ", "))
		return exitError{2}
	}
	// Nothing a command prints reaches the terminal unfiltered: whatever
	// of it came from a container is plain text by the time it is written.
	// The commands that show a terminal view or raw bytes on request filter
	// their standard output themselves.
	if !ownStdout[name] {
		stdout = termsafe.NewPlainWriter(stdout)
	}
	return cmd.run(ctx, g, args[1:], stdout, termsafe.NewPlainWriter(stderr))
}

// ownStdout are the commands that filter their standard output themselves:
// attach (termsafe.View), watch (a tmux client of panes running attach),
// and logs and capture (plain, unless --raw).
var ownStdout = map[string]bool{"attach": true, "watch": true, "logs": true, "capture": true}

// setupLog builds the logger once the command's flags are parsed.
func (g *globals) setupLog(stderr io.Writer) hclog.Logger {
	level := hclog.LevelFromString(g.logLevel)
	if level == hclog.NoLevel {
		level = hclog.Warn
	}
	g.log = hclog.New(&hclog.LoggerOptions{Name: "runner", Level: level, JSONFormat: g.logJSON, Output: stderr})
	return g.log
}
