package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

// cmdSchedule is `runner schedule FILE AGENT --in 30m MESSAGE`: a one-off
// check-in for an agent, delivered by the relay when due (the operator's
// version of an agent's self-scheduled check-in).
func cmdSchedule(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	var in time.Duration
	t, err := runTarget(ctx, g, "schedule", args, stderr, func(fs *flag.FlagSet) {
		fs.DurationVar(&in, "in", 0, "deliver the message after this long (1s to 168h), e.g. 30m")
	}, 2)
	if err != nil {
		return err
	}
	defer t.close()
	if in <= 0 {
		fmt.Fprintln(stderr, "Error: --in is required: how long from now, e.g. --in 30m")
		return exitError{2}
	}
	body := t.rest[1]
	if body == "-" {
		b, err := io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
		if err != nil {
			return err
		}
		body = string(b)
	}
	id, due, err := newRunner(g, t.eng, nil).Schedule(ctx, t.cfg, t.rest[0], in, body)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Check-in %d for %s scheduled by the relay, due %s (in %s).\n", id, t.rest[0], due.Local().Format(time.RFC3339), shortDuration(time.Until(due).Round(time.Second)))
	return nil
}
