package shim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/runner-dev/runner/internal/relay"
)

// Where runner puts the relay and the agent's credential in every agent
// container (runner.RelayMountTarget and runner.CredentialTarget). The
// environment variables override them, for tests.
const (
	DefaultRelaySocket = "/run/runner/relay.sock"
	DefaultCredential  = "/run/secrets/runner-credential"
	EnvRelaySocket     = "RUNNER_RELAY_SOCKET"
	EnvCredential      = "RUNNER_CREDENTIAL"
)

// RelayPaths returns the relay socket and credential file to use.
func RelayPaths() (socket, credential string) {
	socket, credential = DefaultRelaySocket, DefaultCredential
	if s := os.Getenv(EnvRelaySocket); s != "" {
		socket = s
	}
	if c := os.Getenv(EnvCredential); c != "" {
		credential = c
	}
	return socket, credential
}

// readCredential reads the token from the credential file (hex + newline).
func readCredential(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("credential file %s is empty", path)
	}
	return tok, nil
}

// The relay states `runner-agent status` reports (Status.Relay).
const (
	RelayOff         = "off"                  // no relay mounted: delivery never started
	RelayConnecting  = "connecting"           // (re)connecting with backoff
	RelayConnected   = "connected"            // subscribed: messages are pasted as they come
	RelayWaitingPane = "waiting: pane exited" // the agent exited: messages wait at the relay
)

// RelayStateFile is the file, next to the tmux socket, where init keeps the
// delivery state for `runner-agent status`.
const RelayStateFile = "relay-state"

// relayStatePath is where the delivery state of the tmux server on socket is kept.
func relayStatePath(socket string) string {
	return filepath.Join(filepath.Dir(socket), RelayStateFile)
}

// readRelayState returns the state init wrote next to socket; RelayOff if none.
func readRelayState(socket string) string {
	b, err := os.ReadFile(relayStatePath(socket))
	if err != nil {
		return RelayOff
	}
	switch s := strings.TrimSpace(string(b)); s {
	case RelayConnecting, RelayConnected, RelayWaitingPane:
		return s
	}
	return RelayOff
}

// FormatDelivery is the text pasted for d: a label from the relay's fields
// (the sender is the relay's authenticated identity, never the sender's
// words) and the body; the pane gets it sanitized (see Tmux.Paste). Every
// line of the body carries the label, so that a body holding a newline and
// "[from operator] ..." cannot put a line in the pane that reads as another
// sender's (and a program that takes each line as its own input still sees
// who sent it). U+2028 and U+2029 count as line breaks: some programs show
// them as one. Trailing newlines are dropped: Enter follows anyway.
//
//	[from NAME] body           kind "message"
//	[check-in] body            kind "checkin"
//	[brief from operator] body kind "brief"
func FormatDelivery(d relay.Delivery) string {
	body := strings.NewReplacer("\u2028", "\n", "\u2029", "\n").Replace(SanitizeMessage(d.Body))
	body = strings.TrimRight(body, "\n")
	label := "[from " + SanitizeMessage(d.From) + "]"
	switch d.Kind {
	case "checkin":
		label = "[check-in]"
	case "brief":
		label = "[brief from operator]"
	}
	lines := strings.Split(body, "\n")
	for i, l := range lines {
		if l == "" {
			lines[i] = label
		} else {
			lines[i] = label + " " + l
		}
	}
	return strings.Join(lines, "\n")
}

// Deliverer keeps a subscription to the relay and pastes each delivery into
// the agent's pane (see Run).
type Deliverer struct {
	Tmux       *Tmux
	Pane       string // the agent pane's id (%N)
	Socket     string // the relay socket
	Credential string // the file holding this agent's token
	// StateFile receives the state (RelayConnected, ...); "" for none.
	StateFile string
	Logf      func(format string, a ...any)

	// Zero values mean the defaults.
	Poll       time.Duration // how often a dead pane is checked again; 1s
	MinBackoff time.Duration // first reconnect delay; 100ms
	MaxBackoff time.Duration // reconnect delays double up to this; 5s
	// Grace is how long a pane's process must have been seen running before
	// anything is pasted into it, so that a program starting up has put its
	// terminal in the mode it reads input in; 2s (< 0: none).
	Grace time.Duration

	// afterPaste, if set, runs once a delivery is pasted, before it is
	// submitted and acknowledged (tests).
	afterPaste func(relay.Delivery)

	idleAfter atomic.Pointer[[]int] // from the last welcome: see IdleAfter

	last    uint64 // the highest id pasted
	state   string
	note    string // the last problem logged, so that none is logged twice in a row
	seenPID int    // the pane process last seen alive, and since when
	seenAt  time.Time
}

func (d *Deliverer) logf(format string, a ...any) {
	if d.Logf != nil {
		d.Logf(format, a...)
	}
}

// problem logs msg unless it is what was logged last.
func (d *Deliverer) problem(msg string) {
	if msg != d.note {
		d.note = msg
		d.logf("%s", msg)
	}
}

func (d *Deliverer) setState(s string) {
	if s == d.state {
		return
	}
	d.state = s
	if d.StateFile != "" {
		if err := writeFileAtomic(d.StateFile, s+"\n"); err != nil {
			d.problem(fmt.Sprintf("relay: cannot record the delivery state: %v", err))
		}
	}
}

func orDefault(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}

// Run delivers until ctx is done. It subscribes to the relay and, for each
// delivery in order:
//
//   - an id at or below the highest already pasted is a repeat (a lost ack,
//     a relay restart): acknowledged, not pasted;
//   - if the agent's command in the pane has exited, the delivery is not
//     acknowledged: the subscription is closed, so the relay keeps it and
//     everything after it queued, and Run checks the pane every Poll until
//     it runs again (the state is "waiting: pane exited", logged once). The
//     pane is also checked while subscribed (when tmux reports a change, or
//     every Poll without a watching control connection), so the subscription
//     ends as soon as the command exits, message or not;
//   - otherwise it is pasted (FormatDelivery, Tmux.Paste), acknowledged, and
//     submitted with Enter.
//
// When the subscription ends (relay restarted, connection lost) or the relay
// cannot be reached, Run reconnects after MinBackoff, doubling up to
// MaxBackoff, with jitter.
func (d *Deliverer) Run(ctx context.Context) {
	minB, maxB := orDefault(d.MinBackoff, 100*time.Millisecond), orDefault(d.MaxBackoff, 5*time.Second)
	backoff := minB
	pause := func() bool {
		j := backoff/2 + rand.N(backoff/2+1) // [backoff/2, backoff]
		backoff = min(2*backoff, maxB)
		return sleepCtx(ctx, j) == nil
	}
	for ctx.Err() == nil {
		if !d.waitPane(ctx) {
			return
		}
		d.setState(RelayConnecting)
		c, err := d.dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d.problem(fmt.Sprintf("relay: cannot connect: %v; retrying", err))
			if !pause() {
				return
			}
			continue
		}
		d.setState(RelayConnected)
		idle := c.IdleAfter()
		d.idleAfter.Store(&idle)
		d.note = ""
		d.logf("relay: connected as %q: delivering messages into pane %s", c.ID(), d.Pane)
		start, last := time.Now(), d.last
		sctx, endWatch := d.watchPane(ctx)
		err = c.Subscribe(sctx, func(m relay.Delivery) error { return d.handle(sctx, m) })
		paneDied := endWatch()
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, ErrPaneDead) || paneDied {
			continue // waitPane says so, once
		}
		d.setState(RelayConnecting)
		d.problem(fmt.Sprintf("relay: %v; reconnecting", err))
		if d.last > last || time.Since(start) > maxB {
			backoff = minB // it worked for a while: this is a new outage
		}
		if !pause() {
			return
		}
	}
}

func (d *Deliverer) dial(ctx context.Context) (*relay.Client, error) {
	tok, err := readCredential(d.Credential)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return relay.Dial(dctx, d.Socket, tok)
}

// IdleAfter is the agent's after_idle times in seconds, as the relay said
// when the subscription last connected (nil before that).
func (d *Deliverer) IdleAfter() []int {
	if p := d.idleAfter.Load(); p != nil {
		return *p
	}
	return nil
}

// paneAlive reports whether the agent's command is running, and notes since
// when this process has been seen.
func (d *Deliverer) paneAlive(ctx context.Context) (bool, error) {
	st, err := d.Tmux.PaneState(ctx, d.Pane)
	if err != nil {
		return false, err
	}
	ok := st.Running()
	if ok && st.PID != d.seenPID {
		d.seenPID, d.seenAt = st.PID, time.Now()
	}
	return ok, nil
}

// watchPane returns a context for one subscription that ends when ctx does
// or when the agent's command exits (checked when tmux reports a change to
// the pane, or every Poll without a watching control connection), so that the state
// says so at once and the relay keeps what comes next. end stops the watch
// and reports whether the command exited.
func (d *Deliverer) watchPane(ctx context.Context) (sctx context.Context, end func() (paneDied bool)) {
	sctx, cancel := context.WithCancel(ctx)
	died := make(chan struct{})
	done := make(chan struct{})
	// With a control connection watching the pane, tmux says when it
	// changed; the tick only checks while it is not watching.
	var changes <-chan struct{}
	ctl := d.Tmux.Ctl
	if ctl != nil && ctl.Watch != "" {
		var unwatch func()
		changes, unwatch = ctl.Changes()
		go func() { <-done; unwatch() }()
	}
	go func() {
		defer close(done)
		poll := orDefault(d.Poll, time.Second)
		t := time.NewTimer(poll)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-changes:
			case <-t.C:
			}
			if changes != nil && ctl.Watching() {
				t.Reset(quietCheck)
			} else {
				t.Reset(poll)
			}
			// An error (no such pane) counts as exited; waitPane reports it.
			if ok, _ := d.Tmux.PaneAlive(sctx, d.Pane); !ok && sctx.Err() == nil {
				close(died)
				cancel()
				return
			}
		}
	}()
	return sctx, func() bool {
		cancel()
		<-done
		select {
		case <-died:
			return true
		default:
			return false
		}
	}
}

// waitPane returns once the agent's command is running, false if ctx ends
// first. It polls every Poll, and logs the wait once.
func (d *Deliverer) waitPane(ctx context.Context) bool {
	waited := false
	for {
		ok, err := d.paneAlive(ctx)
		if ok {
			if waited {
				d.logf("relay: the agent in pane %s runs again: resuming delivery", d.Pane)
			}
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if !waited {
			waited = true
			d.setState(RelayWaitingPane)
			why := "the agent's command has exited"
			if err != nil {
				why = err.Error()
			}
			d.logf("relay: not delivering into pane %s (%s): messages wait at the relay until it runs again", d.Pane, why)
		}
		if sleepCtx(ctx, orDefault(d.Poll, time.Second)) != nil {
			return false
		}
	}
}

// handle is the subscription's handler: nil acknowledges m.
func (d *Deliverer) handle(ctx context.Context, m relay.Delivery) error {
	if m.ID <= d.last {
		d.logf("relay: dropped a repeat of message %d (already pasted)", m.ID)
		return nil
	}
	text := FormatDelivery(m)
	grace := orDefault(d.Grace, 2*time.Second)
	// The fast way: the pane process seen last still runs (as /proc says)
	// and is past its grace; tmux pastes only if it is still the pane's
	// and the pane not dead, in the same step (one round trip).
	if pid := d.seenPID; d.Tmux.Ctl != nil && pid > 0 && time.Since(d.seenAt) >= grace &&
		alive(pid) && !isZombie(pid) {
		err := d.Tmux.PasteIfRunning(ctx, d.Pane, pid, text)
		if err == nil {
			return d.pasted(ctx, m)
		}
		if !errors.Is(err, errCtlUnusable) {
			return err
		}
	}
	ok, err := d.paneAlive(ctx)
	if err != nil || !ok {
		return ErrPaneDead
	}
	if grace > 0 {
		if wait := grace - time.Since(d.seenAt); wait > 0 {
			if err := sleepCtx(ctx, wait); err != nil {
				return err
			}
			if ok, err := d.paneAlive(ctx); err != nil || !ok {
				return ErrPaneDead
			}
		}
	}
	if err := d.Tmux.Paste(ctx, d.Pane, text); err != nil {
		return err
	}
	return d.pasted(ctx, m)
}

// pasted acknowledges m, once it is in the pane, and submits it.
func (d *Deliverer) pasted(ctx context.Context, m relay.Delivery) error {
	d.last = m.ID
	if d.afterPaste != nil {
		d.afterPaste(m)
	}
	if err := sleepCtx(ctx, d.Tmux.submitDelay()); err != nil {
		return err
	}
	if err := d.Tmux.Submit(ctx, d.Pane); err != nil {
		// The text is in the pane: pasting it again would repeat it.
		d.logf("relay: message %d pasted into pane %s, but Enter failed: %v", m.ID, d.Pane, err)
	}
	return nil
}

// writeFileAtomic replaces path with data (a temporary file renamed over it).
func writeFileAtomic(path, data string) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	_, werr := f.WriteString(data)
	cerr := f.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(f.Name(), path)
	}
	if werr != nil {
		os.Remove(f.Name())
	}
	return werr
}

// startDelivery starts a Deliverer for pane when this container has a relay:
// the credential file exists, and so does the relay socket or the directory
// it appears in (mounted; the relay may be restarting). It returns the
// Deliverer, nil if it did not start one; either way it leaves the state
// file saying so.
func startDelivery(ctx context.Context, t *Tmux, pane string, logf func(string, ...any)) *Deliverer {
	socket, cred := RelayPaths()
	stateFile := relayStatePath(t.Socket)
	_, cerr := os.Stat(cred)
	_, serr := os.Stat(socket)
	if serr != nil {
		_, serr = os.Stat(filepath.Dir(socket))
	}
	if cerr != nil || serr != nil {
		os.Remove(stateFile)
		return nil
	}
	d := &Deliverer{Tmux: t, Pane: pane, Socket: socket, Credential: cred, StateFile: stateFile, Logf: logf}
	d.setState(RelayConnecting)
	go d.Run(ctx)
	return d
}
