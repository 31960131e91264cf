package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/runner-dev/runner/internal/relay"
	"github.com/runner-dev/runner/internal/termsafe"
)

// cmdInbox is `runner inbox FILE`: print the messages agents sent to the
// operator and remove them from the relay's queue. Bodies come from agents:
// they are printed as plain text only (termsafe), and every line carries the
// sender's label, as in a pane.
func cmdInbox(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	var output string
	var keep bool
	cfg, _, err := fileCommand(g, "inbox", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&output, "o", "text", "output format: text or json (one object per line)")
		fs.BoolVar(&keep, "keep", false, "print the oldest messages but leave them queued")
	}, 0, "")
	if err != nil {
		return err
	}
	if output != "text" && output != "json" {
		return fmt.Errorf("-o %q: use text or json", output)
	}
	enc := json.NewEncoder(stdout)
	n, err := newRunner(g, nil, nil).Inbox(ctx, cfg.Run.Name, keep, func(batch []relay.Delivery) error {
		for _, d := range batch {
			if output == "json" {
				if err := enc.Encode(inboxJSON(d)); err != nil {
					return err
				}
				continue
			}
			if _, err := io.WriteString(stdout, inboxText(d)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if n == 0 && output == "text" {
		fmt.Fprintf(stderr, "No messages for the operator in run %q.\n", cfg.Run.Name)
	}
	return nil
}

type inboxEntry struct {
	ID   uint64    `json:"id"`
	From string    `json:"from"`
	Kind string    `json:"kind"`
	Time time.Time `json:"time"`
	Body string    `json:"body"`
}

func inboxJSON(d relay.Delivery) inboxEntry {
	return inboxEntry{ID: d.ID, From: termsafe.Line(d.From), Kind: termsafe.Line(d.Kind), Time: d.Time, Body: termsafe.Text(d.Body)}
}

// inboxText is one message as lines of "#ID TIME [from NAME] text".
func inboxText(d relay.Delivery) string {
	label := fmt.Sprintf("#%d %s [from %s]", d.ID, d.Time.UTC().Format(time.RFC3339), termsafe.Line(d.From))
	body := strings.TrimRight(termsafe.Text(d.Body), "\n")
	var b strings.Builder
	for _, l := range strings.Split(body, "\n") {
		b.WriteString(strings.TrimRight(label+" "+l, " "))
		b.WriteByte('\n')
	}
	return b.String()
}
