package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/runner-dev/runner/internal/names"
)

// Help comes from the command table (main.go) and from each command's own
// flag set, so what --help says is what the command parses.

// globalFlags are registered in every flag set (globals.register) and
// described once, in `runner --help`.
var globalFlags = map[string]bool{"log-level": true, "log-json": true, "var": true, "var-file": true}

// visibleCommands are the advertised command names, in table order.
func visibleCommands() []string {
	var out []string
	for _, c := range commands {
		if !c.hidden {
			out = append(out, c.name)
		}
	}
	return out
}

func writeUsage(w io.Writer) {
	fmt.Fprint(w, `Usage: runner [global flags] COMMAND [args]

runner runs teams of AI coding agents in locked-down containers. Commands
that act on a run take its config file first; the run's name comes from it.

Commands:
`)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range commands {
		if !c.hidden {
			fmt.Fprintf(tw, "  %s %s\t%s\n", c.name, c.args, c.summary)
		}
	}
	tw.Flush()
	fmt.Fprint(w, `
Global flags (before or after the command):
  -var NAME=VALUE        set a config variable (repeatable; commands that take FILE)
  -var-file FILE         set config variables from FILE's NAME = VALUE lines (repeatable)
  --log-level LEVEL      trace, debug, info, warn or error (default warn)
  --log-json             log as JSON lines
  --version              print the version (as `+"`runner version`"+`)
  -h, --help             this help; `+"`runner help COMMAND`"+` or `+"`runner COMMAND --help`"+` for one command

Exit status: 0 success, 1 error, 2 bad usage; `+"`fmt -check`"+` exits 3 when a file
needs formatting; `+"`exec`"+` exits with the command's status; `+"`run`"+` has its own
(see `+"`runner help run`"+`).
`)
}

// cmdHelp is `runner help [COMMAND]`.
func cmdHelp(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	fs := g.newFlags("help", stderr)
	pos, err := g.parseFlags(fs, "help", args, stderr)
	if err != nil {
		return err
	}
	switch len(pos) {
	case 0:
		writeUsage(stdout)
		return nil
	case 1:
		c, ok := lookup(pos[0])
		if !ok || c.hidden {
			msg := fmt.Sprintf("Error: no command %q", pos[0])
			if near, ok := names.Nearest(pos[0], visibleCommands()); ok {
				msg += fmt.Sprintf("; did you mean %q?", near)
			}
			fmt.Fprintln(stderr, msg+" (see `runner --help` for the commands)")
			return exitError{2}
		}
		// The command prints its own help: its flag set is the one it parses.
		return c.run(ctx, g, []string{"--help"}, stdout, stderr)
	}
	usageLine(stderr, "help")
	return exitError{2}
}

// newFlags is the flag set of command name, with the global flags. Help
// and errors are printed by parseFlags, not by the flag package.
func (g *globals) newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("runner "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	g.register(fs)
	return fs
}

// parseFlags parses a command's arguments. --help prints the command's help
// on standard output and ends it with status 0; a bad flag is reported
// (by the flag package) with the usage line, status 2.
func (g *globals) parseFlags(fs *flag.FlagSet, name string, args []string, stderr io.Writer) ([]string, error) {
	if g.probe {
		g.probed = fs
		return nil, exitError{0}
	}
	pos, err := parse(fs, args)
	if err == flag.ErrHelp {
		out := g.stdout
		if out == nil {
			out = os.Stdout
		}
		writeCommandHelp(out, name, fs)
		return nil, exitError{0}
	}
	if err != nil {
		usageLine(stderr, name)
		return nil, exitError{2}
	}
	return pos, nil
}

// usageLine is the short form printed after a usage mistake.
func usageLine(w io.Writer, name string) {
	c, _ := lookup(name)
	fmt.Fprintf(w, "Usage: %s   (more: runner help %s)\n", synopsis(c), c.name)
}

func synopsis(c command) string {
	s := "runner " + c.name
	args, argv, dashes := strings.Cut(c.args, " -- ")
	if args != "" {
		s += " " + args
	}
	s += " [flags]"
	if dashes {
		s += " -- " + argv // exec: the flags go before its command
	}
	return s
}

// writeCommandHelp is one command's help: synopsis, what it does, its own
// flags with their defaults, and an example.
func writeCommandHelp(w io.Writer, name string, fs *flag.FlagSet) {
	c, _ := lookup(name)
	fmt.Fprintf(w, "Usage: %s\n", synopsis(c))
	if fs.Lookup("run") != nil && strings.HasPrefix(c.args, "FILE") {
		// The commands that act on a run also find it by name (target.go).
		fmt.Fprintf(w, "       %s\n", strings.Replace(synopsis(c), " FILE", " --run NAME", 1))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%s%s.\n", strings.ToUpper(c.summary[:1]), c.summary[1:])
	if c.detail != "" {
		fmt.Fprintf(w, "\n%s\n", wrap(strings.TrimSpace(c.detail), 76))
	}
	var own []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if !globalFlags[f.Name] {
			own = append(own, f)
		}
	})
	if len(own) > 0 {
		fmt.Fprintln(w, "\nFlags:")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, f := range own {
			fmt.Fprintf(tw, "  %s\t%s\n", flagName(f), flagUsage(f))
		}
		tw.Flush()
	}
	if c.example != "" {
		fmt.Fprintf(w, "\nExample:\n  %s\n", c.example)
	}
	fmt.Fprintln(w, "\nGlobal flags (-var, -var-file, --log-level, --log-json): see `runner --help`.")
}

// flagName is "-o FORMAT" or "--lines N": one dash for one letter, as the
// rest of the help and README write them.
func flagName(f *flag.Flag) string {
	dash := "--"
	if len(f.Name) == 1 {
		dash = "-"
	}
	arg, _ := flag.UnquoteUsage(f)
	// The type's name, unless the usage names the value (`N`).
	switch arg {
	case "string", "value":
		arg = "VALUE"
	case "int", "uint":
		arg = "N"
	}
	if arg == "" {
		return dash + f.Name
	}
	return dash + f.Name + " " + strings.ToUpper(arg)
}

func flagUsage(f *flag.Flag) string {
	_, usage := flag.UnquoteUsage(f)
	switch f.DefValue {
	case "", "false", "0", "0s", "[]":
		return usage
	}
	return fmt.Sprintf("%s (default %s)", usage, f.DefValue)
}

// wrap breaks text into lines of at most width columns, at spaces.
func wrap(text string, width int) string {
	var b strings.Builder
	n := 0
	for _, word := range strings.Fields(text) {
		if n > 0 && n+1+len(word) > width {
			b.WriteByte('\n')
			n = 0
		} else if n > 0 {
			b.WriteByte(' ')
			n++
		}
		b.WriteString(word)
		n += len(word)
	}
	return b.String()
}
