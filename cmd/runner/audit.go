package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/runner-dev/runner/internal/audit"
	"github.com/runner-dev/runner/internal/termsafe"
	"github.com/runner-dev/runner/runner"
)

// auditFilter selects audit entries: by agent (actor or target), by event
// names, and by time.
type auditFilter struct {
	agent  string
	events []string
	since  time.Time
}

type auditEntry struct {
	Seq                                int
	Time, Event, Actor, Target, Detail string
}

func (f auditFilter) match(e auditEntry) bool {
	if f.agent != "" && e.Actor != f.agent && e.Target != f.agent {
		return false
	}
	if len(f.events) > 0 && !slices.Contains(f.events, e.Event) {
		return false
	}
	if !f.since.IsZero() {
		t, err := time.Parse(time.RFC3339Nano, e.Time)
		if err != nil || t.Before(f.since) {
			return false
		}
	}
	return true
}

func (f auditFilter) active() bool { return f.agent != "" || len(f.events) > 0 || !f.since.IsZero() }

func cmdAudit(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	var (
		verify, raw         bool
		agent, events, snce string
	)
	t, err := runTarget(ctx, g, "audit", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&verify, "verify", false, "check the log's hash chain and report the first broken line")
		fs.BoolVar(&raw, "json", false, "print the log's JSON lines as they are")
		fs.StringVar(&agent, "agent", "", "only entries whose actor or target is this agent")
		fs.StringVar(&events, "event", "", "only these events, comma-separated (send,deny,apply,exec,...)")
		fs.StringVar(&snce, "since", "", "only entries since then: a duration (10m, 1h30m) or a time (2025-06-01T12:00:00Z)")
	}, 0, false)
	run := ""
	if err != nil {
		// A destroyed run is gone from the engine and the state directory,
		// but its audit log is in the archive.
		name := runFlagValue(args)
		if name == "" || len(archivedAudits(name)) == 0 {
			return err
		}
		run = name
	} else {
		defer t.close()
		run = t.cfg.Run.Name
	}
	f := auditFilter{agent: agent}
	if events != "" {
		for _, e := range strings.Split(events, ",") {
			if e = strings.TrimSpace(e); e != "" {
				f.events = append(f.events, e)
			}
		}
	}
	if snce != "" {
		if f.since, err = parseSince(snce, time.Now()); err != nil {
			return err
		}
	}
	path, err := (&runner.Runner{}).AuditLog(run)
	if err != nil {
		arch := archivedAudits(run)
		if len(arch) == 0 {
			return err
		}
		path = arch[len(arch)-1]
		fmt.Fprintf(stderr, "Run %q is destroyed; its archived audit log: %s", run, path)
		if len(arch) > 1 {
			fmt.Fprintf(stderr, " (the newest of %d: %s)", len(arch), strings.Join(arch[:len(arch)-1], ", "))
		}
		fmt.Fprintln(stderr)
	}
	if verify {
		rep, err := audit.VerifyReport(path)
		if err != nil {
			fmt.Fprintf(stdout, "✗ %s: %v (%d good lines before it)\n", path, err, rep.Entries)
			return exitError{1}
		}
		fmt.Fprint(stdout, verifySummary(path, rep))
		return nil
	}
	return printAudit(path, f, raw, stdout)
}

// verifySummary is what audit --verify prints for a chain that verified:
// the entries, and every repair of a torn tail the chain records.
func verifySummary(path string, rep audit.Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "✓ %s: %d entries, hash chain intact", path, rep.Entries)
	if rep.Segments > 1 {
		fmt.Fprintf(&b, " across %d segments", rep.Segments)
	}
	b.WriteString("\n")
	if d := rep.Dropped; d != nil {
		fmt.Fprintf(&b, "  the oldest segments (1 to %d, entries 1 to %d) were dropped at the cap (%s); the kept chain starts at seq %d, linked to the last dropped entry\n", d.Seg, d.Seq, audit.EnvMax, rep.FirstSeq)
	}
	for _, r := range rep.Repairs {
		fmt.Fprintf(&b, "  repaired at seq %d (%s): %s\n", r.Seq, r.Time.UTC().Format(time.RFC3339), termsafe.Line(r.Detail))
	}
	return b.String()
}

func printAudit(path string, f auditFilter, raw bool, stdout io.Writer) error {
	// Every kept segment, oldest first; a line that is not an entry is shown
	// as is (termsafe) when nothing is filtered: --verify says what is wrong.
	return audit.Lines(path, func(line []byte) error {
		var e auditEntry
		if err := json.Unmarshal(line, &e); err != nil {
			if !f.active() {
				fmt.Fprintln(stdout, termsafe.Line(string(line)))
			}
			return nil
		}
		if !f.match(e) {
			return nil
		}
		if raw {
			fmt.Fprintln(stdout, string(line))
			return nil
		}
		// One line per entry, whatever a field holds.
		l := termsafe.Line
		fmt.Fprintf(stdout, "%5d %s %-13s %-10s %-10s %s\n", e.Seq, l(e.Time), l(e.Event), l(dash(e.Actor)), l(dash(e.Target)), strings.TrimSpace(l(e.Detail)))
		return nil
	})
}

// archivedAudits are the archived audit logs of destroyed runs of this
// name, oldest first.
func archivedAudits(run string) []string {
	paths, err := runner.ArchivedAuditLogs(run)
	if err != nil {
		return nil
	}
	return paths
}

// runFlagValue is the NAME of --run NAME in args ("" if none).
func runFlagValue(args []string) string {
	for i, a := range args {
		if a == "--" {
			return ""
		}
		for _, p := range []string{"--run=", "-run="} {
			if v, ok := strings.CutPrefix(a, p); ok {
				return v
			}
		}
		if (a == "--run" || a == "-run") && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}
