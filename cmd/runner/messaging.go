package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/runner-dev/runner/internal/audit"
	"github.com/runner-dev/runner/internal/termsafe"
	"github.com/runner-dev/runner/runner"
)

func cmdSend(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	t, err := runTarget(ctx, g, "send", args, stderr, nil, 2)
	if err != nil {
		return err
	}
	defer t.close()
	cfg, rest, eng := t.cfg, t.rest, t.eng
	body := rest[1]
	if body == "-" {
		b, err := io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
		if err != nil {
			return err
		}
		body = string(b)
	}
	id, err := newRunner(g, eng, nil).Send(ctx, cfg, rest[0], body)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Message %d to %s accepted by the relay.\n", id, rest[0])
	return nil
}

func cmdAudit(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	var verify, raw bool
	t, err := runTarget(ctx, g, "audit", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&verify, "verify", false, "check the log's hash chain and report the first broken line")
		fs.BoolVar(&raw, "json", false, "print the log's JSON lines as they are")
	}, 0, false)
	if err != nil {
		return err
	}
	defer t.close()
	path, err := (&runner.Runner{}).AuditLog(t.cfg.Run.Name)
	if err != nil {
		return err
	}
	if verify {
		n, err := audit.Verify(path)
		if err != nil {
			fmt.Fprintf(stdout, "✗ %s: %v (%d good lines before it)\n", path, err, n)
			return exitError{1}
		}
		fmt.Fprintf(stdout, "✓ %s: %d entries, hash chain intact\n", path, n)
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if raw {
			fmt.Fprintln(stdout, sc.Text())
			continue
		}
		var e struct {
			Seq                                int
			Time, Event, Actor, Target, Detail string
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			fmt.Fprintln(stdout, sc.Text())
			continue
		}
		// One line per entry, whatever a field holds.
		l := termsafe.Line
		fmt.Fprintf(stdout, "%5d %s %-13s %-10s %-10s %s\n", e.Seq, l(e.Time), l(e.Event), l(dash(e.Actor)), l(dash(e.Target)), strings.TrimSpace(l(e.Detail)))
	}
	return sc.Err()
}
