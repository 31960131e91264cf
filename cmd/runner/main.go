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
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"

	"github.com/runner-dev/runner/internal/names"
	"github.com/runner-dev/runner/internal/termsafe"
)

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
		var w io.Writer = os.Stderr
		if colorFor(os.Stderr) {
			w = newPainter(w, stderrRules)
		}
		fmt.Fprintln(w, "Error:", termsafe.Line(err.Error()))
		os.Exit(1)
	}
}

// globals are flags every command accepts.
type globals struct {
	logLevel string
	logJSON  bool
	vars     varFlags
	varFiles varFileFlags
	log      hclog.Logger
	// files are the sources the config loader parsed, for diagnostics
	// found after loading (the mount-source stage).
	files map[string]*hcl.File
	// json is a command's -json: diagnostics are kept in diags for its
	// JSON document instead of being printed.
	json  bool
	diags hcl.Diagnostics
	// lastOptional lets a command's last positional argument be left out
	// (logs FILE [AGENT]).
	lastOptional bool
	// prompt is where apply and destroy ask for a confirmation.
	prompt prompter
	// stdout is where help goes when a command's --help asks for it.
	stdout io.Writer
	// probe asks parseFlags for the command's flag set (in probed)
	// instead of parsing: shell completion lists flags this way.
	probe  bool
	probed *flag.FlagSet
	// lockTimeout is -lock-timeout of the commands that take the run's
	// lock (apply, destroy, run, fetch).
	lockTimeout time.Duration
}

// lockFlag registers -lock-timeout for a command that takes the run's lock.
func lockFlag(g *globals) func(*flag.FlagSet) {
	return func(fs *flag.FlagSet) {
		fs.DurationVar(&g.lockTimeout, "lock-timeout", 0, "wait this long for another operation on the run to finish (0: fail at once, naming it)")
	}
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

// varFileFlags are -var-file FILE flags, in order.
type varFileFlags struct{ files *[]string }

func (v varFileFlags) String() string { return "" }

func (v varFileFlags) Set(s string) error {
	if s == "" {
		return fmt.Errorf("-var-file wants a file of NAME = VALUE lines")
	}
	*v.files = append(*v.files, s)
	return nil
}

func (g *globals) register(fs *flag.FlagSet) {
	if g.varFiles.files == nil {
		g.varFiles.files = new([]string)
	}
	fs.Var(g.varFiles, "var-file", "set config variables from a file of NAME = VALUE lines (repeatable)")
	fs.StringVar(&g.logLevel, "log-level", "warn", "log level: trace, debug, info, warn, error")
	fs.BoolVar(&g.logJSON, "log-json", false, "log as JSON lines")
	fs.Var(g.vars, "var", "set a config variable, NAME=VALUE (repeatable)")
}

// parse accepts flags before and after positional arguments, as people
// type `runner capture agents.hcl alice --lines 20`.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if len(args) > 0 && args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		// Parse eats a "--" that ends the flags: all after it is positional.
		if n := len(args) - len(fs.Args()); n > 0 && args[n-1] == "--" {
			return append(pos, fs.Args()...), nil
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// commands is the CLI's one command table: dispatch, `runner --help`,
// each command's --help, and shell completion all read it. Hidden commands
// are started by runner itself (or by a completion script) and are not
// advertised. (Filled in init: help reads the table it is in.)
var commands []command

func init() {
	commands = []command{
		{name: "validate", args: "FILE", summary: "check a config file without touching an engine", example: "runner validate agents.hcl", run: cmdValidate},
		{name: "plan", args: "FILE", summary: "show what apply would change, attribute by attribute, and what weakens isolation",
			detail: "Plan compares the file with what is deployed (each container's recorded settings, the run's relay and egress state). Each agent's line says create, update in place, replace, delete or keep; under it each changed attribute, with \"# forces replacement\" or how it changes in place, and \"!\" with the reason where a change weakens isolation. Exit status with -detailed-exitcode: 0 no changes, 2 changes, 1 error.", example: "runner plan agents.hcl -detailed-exitcode", run: cmdPlan},
		{name: "apply", args: "FILE", summary: "make the run match the file (a second apply is a no-op)",
			detail: "Apply prints the plan and carries out exactly that plan. On a terminal it asks before a plan that weakens isolation or deletes an agent (only \"yes\" goes on); -auto-approve skips the question, and without a terminal (CI) nothing asks.", example: "runner apply agents.hcl", run: cmdApply},
		{name: "status", args: "FILE", summary: "show each agent: container, state, process, security, uptime", example: "runner status agents.hcl -o wide", run: cmdStatus},
		{name: "ls", summary: "list every run on the engine and in this host's state, with or without its file", example: "runner ls -o json", run: cmdLs},
		{name: "capture", args: "FILE AGENT", summary: "print a snapshot of an agent's tmux pane (read-only)", example: "runner capture agents.hcl alice --lines 50", run: cmdCapture},
		{name: "attach", args: "FILE AGENT", summary: "live view of an agent's pane; keys reach it only with --write (audited)", example: "runner attach agents.hcl alice", run: cmdAttach},
		{name: "watch", args: "FILE", summary: "a local tmux session with one read-only pane per agent", example: "runner watch agents.hcl", run: cmdWatch},
		{name: "logs", args: "FILE [AGENT]", summary: "print everything an agent's pane printed (recorded on this host); with no AGENT, every agent's, each line prefixed by its name",
			example: "runner logs agents.hcl -f", run: cmdLogs},
		{name: "exec", args: "FILE AGENT -- ARGV...", summary: "run a command in an agent's container as the agent's user (audited)",
			detail: "The command runs as the container's user (never uid 0), with a TTY when stdin is a terminal; stdin is passed through, and the exit status is the command's. The audit log records the program, the number of arguments and a sha256 of the argv, not the arguments. Its output is filtered like everything from a container.", example: "runner exec agents.hcl alice -- git status", run: cmdExec},
		{name: "shell", args: "FILE AGENT", summary: "an interactive shell in an agent's container as the agent's user (audited)", example: "runner shell agents.hcl alice", run: cmdShell},
		{name: "send", args: "FILE AGENT MESSAGE", summary: "send a message to an agent as the operator (\"-\" reads stdin)", example: "runner send agents.hcl alice 'rebase on main'", run: cmdSend},
		{name: "schedule", args: "FILE AGENT MESSAGE", summary: "schedule a one-off check-in message for an agent (--in 30m; \"-\" reads stdin)", example: "runner schedule agents.hcl alice --in 30m 'status?'", run: cmdSchedule},
		{name: "inbox", args: "FILE", summary: "print the agents' messages to the operator, and remove them", example: "runner inbox agents.hcl --keep", run: cmdInbox},
		{name: "egress", args: "check FILE AGENT HOST[:PORT]|URL", summary: "would an agent's egress rules allow a destination, and which entry decides (nothing is dialled)",
			detail: "Exit status: 0 allowed, 1 denied, 2 the question could not be answered. Without check, `runner egress FILE [AGENT] [-o json]` reports from the run's audit log what each agent reached and was refused (counts, bytes), and for each refusal the line to paste into the agents file.", example: "runner egress check agents.hcl alice github.com:443", run: cmdEgress},
		{name: "audit", args: "FILE", summary: "print the run's audit log, or check its hash chain", example: "runner audit agents.hcl --verify", run: cmdAudit},
		{name: "run", args: "FILE", summary: "CI job: apply, wait, print output, destroy",
			detail: "Results go to stdout, progress to stderr; no terminal is needed. Exit status: 0 every agent exited 0; else the first failing agent's (by name; 1 if a signal killed it); 124 timeout; 125 the job could not run or be cleaned up; 130 SIGINT, 143 SIGTERM (after cleaning up); 2 usage.", example: "runner run ci.hcl --timeout 20m -o junit", run: cmdRun},
		{name: "destroy", args: "FILE", summary: "remove the run's containers, relay and state (idempotent)",
			detail: "On a terminal it asks first (only \"yes\" goes on); -auto-approve skips the question, and without a terminal (CI) nothing asks. The audit log is kept in the state directory's archive. An agent's workspace is fetched into its repository first (refs/runner/RUN/AGENT/*); if that fails, or it has uncommitted changes, its clone is kept under $RUNNER_STATE_DIR/kept/ and destroy says where; --discard-work throws the clones away.", example: "runner destroy --run demo -auto-approve", run: cmdDestroy},
		{name: "fetch", args: "FILE [AGENT...]", summary: "bring agents' workspace commits into their repository as refs/runner/RUN/AGENT/*",
			detail: "git upload-pack runs inside the agent's container; the host's git fetch receives a checked pack (transfer.fsckObjects), at most RUNNER_FETCH_MAX bytes (default 512MiB). Nothing else in the repository changes: not HEAD, the index, the working tree, branches or config.", example: "runner fetch agents.hcl eng-1", run: cmdFetch},
		{name: "diff", args: "FILE AGENT", summary: "what an agent changed in its workspace, from the fetched refs", example: "runner diff agents.hcl eng-1 --stat", run: cmdDiff},
		{name: "fmt", args: "[FILE...]", summary: "rewrite config files in the canonical format",
			detail: "With no FILE, the *.hcl files of the current directory; a directory means its *.hcl files; \"-\" reads stdin and writes stdout. Files are rewritten in place (atomically, mode kept); one that does not parse is reported and left alone. Exit status: 0 done (or, with -check, nothing to do), 1 a file could not be read or parsed, 3 -check found files to format.", example: "runner fmt -check agents.hcl", run: cmdFmt},
		{name: "doctor", summary: "check the engine: reachable, rootless, seccomp, cgroups, limits", example: "runner doctor", run: cmdDoctor},
		{name: "image", args: "build", summary: "build the default agent image from this machine's files (no registry)", example: "runner image build", run: cmdImage},
		{name: "completion", args: "bash|zsh|fish", summary: "print a shell completion script", example: "source <(runner completion bash)", run: cmdCompletion},
		{name: "version", summary: "print the version, commit and Go version", example: "runner version", run: cmdVersion},
		{name: "help", args: "[COMMAND]", summary: "show help for runner or one command", example: "runner help exec", run: cmdHelp},
		{name: "services", hidden: true, run: cmdServices},
		{name: "__fetch-pack-proxy", hidden: true, run: cmdFetchProxy},
		{name: "__complete", hidden: true, run: cmdComplete},
	}
}

// command is one row of the table.
type command struct {
	name    string
	args    string // positional arguments, as the usage line shows them
	summary string // one line, lower case, no full stop
	detail  string // more, when one line cannot say it (exit codes, rules)
	example string
	hidden  bool
	run     func(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error
}

// lookup finds a command by name; a subcommand ("egress check") is found
// by its command's row.
func lookup(name string) (command, bool) {
	name, _, _ = strings.Cut(name, " ")
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if colorFor(stderr) {
		stderr = newPainter(stderr, stderrRules)
	}
	g := &globals{vars: varFlags{}, stdout: stdout, prompt: promptFor(stdout)}
	top := flag.NewFlagSet("runner", flag.ContinueOnError)
	top.SetOutput(stderr)
	top.Usage = func() {}
	g.register(top)
	showVersion := top.Bool("version", false, "print the version")
	top.BoolVar(showVersion, "v", false, "print the version")
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			writeUsage(stdout)
			return nil
		}
		fmt.Fprintln(stderr, "See `runner --help`.")
		return exitError{2}
	}
	args = top.Args()
	if *showVersion {
		return cmdVersion(ctx, g, nil, stdout, stderr)
	}
	if len(args) == 0 {
		writeUsage(stderr)
		return exitError{2}
	}
	name := args[0]
	cmd, ok := lookup(name)
	if !ok {
		msg := fmt.Sprintf("unknown command %q", name)
		if near, ok := names.Nearest(name, visibleCommands()); ok {
			msg += fmt.Sprintf("; did you mean %q?", near)
		}
		fmt.Fprintf(stderr, "Error: %s (see `runner --help` for the commands)\n", termsafe.Line(msg))
		return exitError{2}
	}
	// Nothing a command prints reaches the terminal unfiltered: whatever
	// of it came from a container is plain text by the time it is written.
	// The commands that show a terminal view or raw bytes on request filter
	// their standard output themselves.
	// Colour goes on after that, so it is only ever the CLI's own.
	if !ownStdout[name] {
		if planOutput[name] && colorFor(stdout) {
			stdout = newPainter(stdout, planRules)
		}
		stdout = termsafe.NewPlainWriter(stdout)
	}
	g.stdout = stdout
	err := cmd.run(ctx, g, args[1:], stdout, termsafe.NewPlainWriter(stderr))
	if ee, ok := err.(exitError); ok && ee.code == 0 {
		return nil // help was asked for and shown
	}
	return err
}

// planOutput are the commands whose standard output shows plan symbols.
var planOutput = map[string]bool{"plan": true, "apply": true, "destroy": true}

// ownStdout are the commands that filter their standard output themselves:
// attach (termsafe.View), watch (a tmux client of panes running attach),
// logs and capture (plain, unless --raw), and exec and shell (a view on a
// TTY, plain otherwise).
var ownStdout = map[string]bool{"attach": true, "watch": true, "logs": true, "capture": true, "exec": true, "shell": true}

// setupLog builds the logger once the command's flags are parsed.
func (g *globals) setupLog(stderr io.Writer) hclog.Logger {
	level := hclog.LevelFromString(g.logLevel)
	if level == hclog.NoLevel {
		level = hclog.Warn
	}
	g.log = hclog.New(&hclog.LoggerOptions{Name: "runner", Level: level, JSONFormat: g.logJSON, Output: stderr})
	return g.log
}
