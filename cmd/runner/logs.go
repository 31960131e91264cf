package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/runner-dev/runner/internal/engine/docker"
	"github.com/runner-dev/runner/runner"
)

// The recorder is started by apply, like the relay; people do not need it,
// so it is not in the usage.
// cmdLogs is `runner logs FILE AGENT [-f] [--since D] [--raw]`.
func cmdLogs(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	var (
		follow, raw bool
		since       string
	)
	cfg, rest, err := fileCommand(g, "logs", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&follow, "f", false, "follow: go on printing what the agent prints (Ctrl-C stops)")
		fs.StringVar(&since, "since", "", "only what was printed since then: a duration (10m, 1h30m) or a time (2025-06-01T12:00:00Z)")
		fs.BoolVar(&raw, "raw", false, "the bytes as the agent wrote them, escape sequences included (for a file or `less -R`: they act on your terminal)")
	}, 1, " AGENT")
	if err != nil {
		return err
	}
	o := runner.LogsOptions{Follow: follow, Raw: raw, Out: stdout}
	if since != "" {
		if o.Since, err = parseSince(since, time.Now()); err != nil {
			return err
		}
	}
	return newRunner(g, nil, nil).Logs(ctx, cfg, rest[0], o)
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

// cmdRecord is `runner record serve STATE_ROOT RUN`: apply starts it
// detached, with DOCKER_HOST set to the engine it applied to.
func cmdRecord(ctx context.Context, g *globals, args []string, _, stderr io.Writer) error {
	if len(args) != 3 || args[0] != "serve" {
		fmt.Fprintln(stderr, "Usage: runner record serve STATE_ROOT RUN   (started by `runner apply`)")
		return exitError{2}
	}
	// Its log file is where stream starts and ends are told: info and up.
	log := hclog.New(&hclog.LoggerOptions{Name: "record", Level: hclog.Info, Output: stderr})
	if l := hclog.LevelFromString(g.logLevel); g.logLevel != "warn" && l != hclog.NoLevel {
		log.SetLevel(l)
	}
	eng, err := docker.New(ctx, "")
	if err != nil {
		return err
	}
	defer eng.Close()
	return runner.ServeRecorder(ctx, eng, args[1], args[2], log)
}
