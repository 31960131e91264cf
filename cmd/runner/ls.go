package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/runner"
)

// cmdLs is `runner ls [-o json]`, compose's ls: every run on the engine and
// every run with state on this host, including runs whose file is gone or
// was renamed, so they can be found and acted on with --run NAME.
func cmdLs(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	fs := g.newFlags("ls", stderr)
	output := fs.String("o", "table", "output format: table or json")
	engineName := fs.String("engine", "docker", "the engine to list: docker or containerd")
	pos, err := g.parseFlags(fs, "ls", args, stderr)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		usageLine(stderr, "ls")
		return exitError{2}
	}
	if *output != "table" && *output != "json" {
		return fmt.Errorf("-o %q: use table or json", *output)
	}
	g.setupLog(stderr)
	eng, err := connect(ctx, &config.Config{Run: config.Run{Engine: *engineName}})
	if err != nil {
		return err
	}
	defer eng.Close()
	runs, err := newRunner(g, eng, nil).ListRuns(ctx)
	if err != nil {
		return err
	}
	if *output == "json" {
		if runs == nil {
			runs = []runner.RunSummary{}
		}
		return writeJSON(stdout, runs)
	}
	writeRuns(stdout, runs, time.Now())
	return nil
}

// writeRuns prints the ls table.
func writeRuns(w io.Writer, runs []runner.RunSummary, now time.Time) {
	if len(runs) == 0 {
		fmt.Fprintln(w, "No runs on this engine or in this host's state directory.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tAGENTS\tSINCE\tENGINE\tFILE")
	for _, r := range runs {
		since := "-"
		if r.Since != nil {
			since = ago(r.Since, now)
		}
		file := dash(r.File)
		switch {
		case r.File != "" && r.FileMissing:
			file += " (gone: use --run " + r.Run + ")"
		case !r.State:
			file = "- (no state on this host)"
		}
		fmt.Fprintf(tw, "%s\t%d/%d running\t%s\t%s\t%s\n", r.Run, r.Running, r.Agents, since, r.Engine, file)
	}
	tw.Flush()
	if hint := lsHint(runs); hint != "" {
		fmt.Fprintln(w, hint)
	}
}

func lsHint(runs []runner.RunSummary) string {
	var gone []string
	for _, r := range runs {
		if r.FileMissing {
			gone = append(gone, r.Run)
		}
	}
	if len(gone) == 0 {
		return ""
	}
	return fmt.Sprintf("\nA run whose file is gone is still reachable by name: runner status --run %s, runner destroy --run %s.", gone[0], gone[0]) +
		map[bool]string{true: " (" + strings.Join(gone, ", ") + ")"}[len(gone) > 1]
}
