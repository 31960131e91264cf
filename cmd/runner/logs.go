package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/transcript"

	"github.com/runner-dev/runner/internal/termsafe"
	"github.com/runner-dev/runner/runner"
)

// cmdLogs is `runner logs FILE [AGENT] [-f] [--since D] [--raw] [--verify]`.
func cmdLogs(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	var (
		follow, raw, verify bool
		since               string
	)
	g.lastOptional = true
	t, err := runTarget(ctx, g, "logs", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&follow, "f", false, "follow: go on printing what the agent prints (Ctrl-C stops)")
		fs.StringVar(&since, "since", "", "only what was printed since then: a duration (10m, 1h30m) or a time (2025-06-01T12:00:00Z)")
		fs.BoolVar(&raw, "raw", false, "the bytes as the agent wrote them, escape sequences included (for a file or `less -R`: they act on your terminal)")
		fs.BoolVar(&verify, "verify", false, "check the transcript's hash chain and report the first broken segment and record")
	}, 1, false)
	if err != nil {
		return err
	}
	defer t.close()
	cfg, rest := t.cfg, t.rest
	if len(rest) == 0 {
		if raw || verify {
			return fmt.Errorf("--raw and --verify are for one agent: runner logs %s AGENT", strings.Join(t.fileArg(), " "))
		}
		o := runner.LogsOptions{Follow: follow, Out: termsafe.NewPlainWriter(stdout), Err: stderr}
		if since != "" {
			if o.Since, err = parseSince(since, time.Now()); err != nil {
				return err
			}
		}
		return newRunner(g, nil, nil).LogsAll(ctx, cfg, o)
	}
	if verify {
		return verifyTranscript(g, cfg, rest[0], termsafe.NewPlainWriter(stdout))
	}
	o := runner.LogsOptions{Follow: follow, Raw: raw, Out: termsafe.NewPlainWriter(stdout), Err: stderr}
	if raw {
		warnRaw(stdout, stderr, "logs")
		o.Out = stdout
	}
	if since != "" {
		if o.Since, err = parseSince(since, time.Now()); err != nil {
			return err
		}
	}
	return newRunner(g, nil, nil).Logs(ctx, cfg, rest[0], o)
}

func verifyTranscript(g *globals, cfg *config.Config, agent string, stdout io.Writer) error {
	v, dir, err := newRunner(g, nil, nil).VerifyTranscript(cfg, agent)
	if err != nil {
		if dir == "" || errors.Is(err, transcript.ErrNoTranscript) {
			return err
		}
		fmt.Fprintf(stdout, "✗ %s's transcript: %v (%d good records before it)\n", agent, err, v.Records)
		return exitError{1}
	}
	fmt.Fprintf(stdout, "✓ %s's transcript (%s): hash chain intact: %d records in segments %d to %d, %d bytes of output, %d streams\n",
		agent, dir, v.Records, v.First, v.Last, v.Bytes, v.Streams)
	if d := v.Dropped; d != nil {
		fmt.Fprintf(stdout, "  %d bytes of earlier output (segments 1 to %d, recorded %s to %s) were dropped at the cap, as its newest segment records\n",
			d.Bytes, d.Seg, d.From.UTC().Format(time.RFC3339), d.To.UTC().Format(time.RFC3339))
	}
	if v.Partial {
		fmt.Fprintln(stdout, "  its newest segment ends in a record being written (or cut short)")
	}
	fmt.Fprintln(stdout, "  This shows what the recorder received and when; the agent can write into its own stream, so not that its pane showed it.")
	return nil
}

// parseSince reads --since: a duration back from now, or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("--since %s: use a positive duration", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--since %q: use a duration (10m, 1h30m) or an RFC 3339 time (2025-06-01T12:00:00Z)", s)
}
