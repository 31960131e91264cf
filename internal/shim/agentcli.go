package shim

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/runner-dev/runner/internal/relay"
)

// The agent's messaging commands: send, peers, inbox, schedule. Each makes
// one connection to the relay with the container's credential (RelayPaths).
// Exit codes: 0 done, 1 the relay refused or could not be reached, 2 usage.

const (
	sendUsage     = "usage: runner-agent send TO MESSAGE   (MESSAGE - reads it from stdin)"
	peersUsage    = "usage: runner-agent peers"
	inboxUsage    = "usage: runner-agent inbox [-n N]   (N from 1 to 50, default 20)"
	scheduleUsage = "usage: runner-agent schedule DURATION MESSAGE   (DURATION like 90s, 1.5m, 2h)"
)

// maxStdinMessage bounds what `send TO -` reads; the relay's own limit
// (16 KiB by default) is far below it and decides.
const maxStdinMessage = 1 << 20

// cliTimeout bounds one messaging command.
const cliTimeout = 20 * time.Second

func usageError(stderr io.Writer, usage, format string, a ...any) int {
	if format != "" {
		fmt.Fprintf(stderr, "runner-agent: "+format+"\n", a...)
	}
	fmt.Fprintln(stderr, usage)
	return ExitUsage
}

// relayFailure prints err the way an agent can act on it and returns 1.
func relayFailure(stderr io.Writer, err error) int {
	var re *relay.Error
	if errors.As(err, &re) {
		fmt.Fprintf(stderr, "runner-agent: relay refused: %s (%s)\n", re.Reason, re.Code)
	} else {
		fmt.Fprintf(stderr, "runner-agent: %v\n", err)
	}
	return 1
}

// retryable: the relay did not answer, or asked to come back later.
func retryable(err error) bool {
	var re *relay.Error
	if errors.As(err, &re) {
		return re.Code == "rate_limited" || re.Code == "too_many_connections"
	}
	return !errors.Is(err, errNoCredential)
}

var errNoCredential = errors.New("no relay credential")

// withRelay dials the relay and runs f. While the relay cannot be reached
// or asks to come back later it retries, on a new connection each time, for
// up to cliTimeout; a failure of f itself is retried only if repeat says f
// is safe to repeat (send is: its client id keeps a repeat from being
// queued twice).
func withRelay(repeat bool, f func(*relay.Client) error) error {
	socket, cred := RelayPaths()
	tok, err := readCredential(cred)
	if err != nil {
		return fmt.Errorf("%w: %v (messaging works inside a container started by `runner apply`)", errNoCredential, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	backoff := 100 * time.Millisecond
	for {
		dialed := false
		err = func() error {
			dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
			defer dcancel()
			c, err := relay.Dial(dctx, socket, tok)
			if err != nil {
				return err
			}
			defer c.Close()
			dialed = true
			return f(c)
		}()
		if err == nil || !retryable(err) || (dialed && !repeat) {
			return err
		}
		if sleepCtx(ctx, backoff) != nil {
			return err
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

func cmdSend(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) < 2 || args[0] == "" {
		return usageError(stderr, sendUsage, "")
	}
	to, body := args[0], strings.Join(args[1:], " ")
	if len(args) == 2 && args[1] == "-" {
		b, err := io.ReadAll(io.LimitReader(stdin, maxStdinMessage+1))
		if err != nil {
			fmt.Fprintf(stderr, "runner-agent: send: reading the message from stdin: %v\n", err)
			return 1
		}
		if len(b) > maxStdinMessage {
			fmt.Fprintf(stderr, "runner-agent: send: the message on stdin is over %d bytes\n", maxStdinMessage)
			return 1
		}
		body = strings.TrimRight(string(b), "\r\n")
	}
	if strings.TrimSpace(body) == "" {
		return usageError(stderr, sendUsage, "send: the message is empty")
	}
	m := relay.Message{To: to, Body: body, ClientID: relay.NewClientID()}
	var id uint64
	err := withRelay(true, func(c *relay.Client) (err error) {
		id, err = c.SendMessage(m)
		return err
	})
	if err != nil {
		return relayFailure(stderr, err)
	}
	fmt.Fprintf(stdout, "sent #%d to %s\n", id, to)
	return 0
}

func cmdPeers(args []string, stdout, stderr io.Writer) int {
	if len(args) != 0 {
		return usageError(stderr, peersUsage, "peers takes no arguments")
	}
	var peers []string
	err := withRelay(true, func(c *relay.Client) (err error) {
		peers, err = c.Peers()
		return err
	})
	if err != nil {
		return relayFailure(stderr, err)
	}
	for _, p := range peers {
		fmt.Fprintln(stdout, SanitizeMessage(p))
	}
	if len(peers) == 0 {
		fmt.Fprintln(stderr, "runner-agent: this agent may message nobody")
	}
	return 0
}

func cmdInbox(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("runner-agent inbox", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	n := fs.Int("n", 20, "the last `N` messages (1 to 50)")
	if err := fs.Parse(args); err != nil {
		return usageError(stderr, inboxUsage, "inbox: %v", err)
	}
	if fs.NArg() != 0 {
		return usageError(stderr, inboxUsage, "inbox: unexpected argument %q", fs.Arg(0))
	}
	if *n < 1 || *n > 50 {
		return usageError(stderr, inboxUsage, "inbox: -n %d is out of range", *n)
	}
	var msgs []relay.Delivery
	err := withRelay(true, func(c *relay.Client) (err error) {
		msgs, err = c.Inbox(*n)
		return err
	})
	if err != nil {
		return relayFailure(stderr, err)
	}
	for _, m := range msgs { // oldest first: the newest is last
		fmt.Fprintf(stdout, "#%d %s\n", m.ID, FormatDelivery(m))
	}
	if len(msgs) == 0 {
		fmt.Fprintln(stderr, "runner-agent: no messages delivered yet")
	}
	return 0
}

func cmdSchedule(args []string, stdout, stderr io.Writer, now func() time.Time) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) < 2 {
		return usageError(stderr, scheduleUsage, "")
	}
	after, err := time.ParseDuration(args[0])
	if err != nil {
		return usageError(stderr, scheduleUsage, "schedule: %q is not a duration", args[0])
	}
	if after <= 0 {
		return usageError(stderr, scheduleUsage, "schedule: the duration must be positive, not %s", args[0])
	}
	body := strings.Join(args[1:], " ")
	if strings.TrimSpace(body) == "" {
		return usageError(stderr, scheduleUsage, "schedule: the message is empty")
	}
	var (
		id  uint64
		due time.Time
	)
	// Not repeated once it reached the relay: a repeat would schedule twice.
	err = withRelay(false, func(c *relay.Client) (err error) {
		id, due, err = c.Schedule(after, body)
		return err
	})
	if err != nil {
		return relayFailure(stderr, err)
	}
	in := due.Sub(now()).Round(time.Second)
	fmt.Fprintf(stdout, "check-in #%d due %s (in %s)\n", id, due.Local().Format(time.RFC3339), max(in, 0))
	return 0
}
