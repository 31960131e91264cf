package shim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runner-dev/runner/internal/audit"
	"github.com/runner-dev/runner/internal/relay"
)

// testRelay is a real relay on a unix socket, restartable on the same
// journal, with a credential file per identity.
type testRelay struct {
	t      *testing.T
	cfg    relay.Config
	creds  map[string]string // identity -> credential file
	cancel context.CancelFunc
	done   chan error
}

func startRelay(t *testing.T, acl map[string][]string, ids ...string) *testRelay {
	t.Helper()
	sockDir, err := os.MkdirTemp("", "rl") // socket paths are limited to 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	dir := t.TempDir()
	log, err := audit.Open(filepath.Join(dir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	r := &testRelay{t: t, creds: map[string]string{}}
	tokens, sockets := map[string]string{}, map[string]string{}
	for _, id := range append([]string{relay.Operator}, ids...) {
		tok, err := relay.GenerateCredential()
		if err != nil {
			t.Fatal(err)
		}
		tokens[id] = tok
		sockets[id] = filepath.Join(sockDir, id+".sock")
		r.creds[id] = filepath.Join(dir, id+".cred")
		if err := os.WriteFile(r.creds[id], []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r.cfg = relay.Config{
		Run: "shimtest", Sockets: sockets, StateDir: filepath.Join(dir, "state"),
		Credentials: tokens, ACL: acl, Audit: log,
	}
	r.start()
	t.Cleanup(func() {
		if r.cancel != nil {
			r.stop()
		}
	})
	return r
}

func (r *testRelay) start() {
	r.t.Helper()
	srv, err := relay.New(r.cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan error, 1)
	go func() { r.done <- srv.Serve(ctx) }()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if fi, err := os.Stat(r.cfg.Sockets[relay.Operator]); err == nil && fi.Mode().Perm() == 0o600 {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatal("the relay socket did not appear")
		}
	}
}

func (r *testRelay) stop() {
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("relay Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		r.t.Fatal("the relay did not stop")
	}
}

// send sends body from one identity to another, as a new connection.
func (r *testRelay) send(from, to, body string) uint64 {
	r.t.Helper()
	tok, _ := readCredential(r.creds[from])
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := relay.Dial(ctx, r.cfg.Sockets[from], tok)
	if err != nil {
		r.t.Fatalf("dial as %s: %v", from, err)
	}
	defer c.Close()
	id, err := c.Send(to, body)
	if err != nil {
		r.t.Fatalf("send %s -> %s: %v", from, to, err)
	}
	return id
}

// deliverer runs a Deliverer for identity id into pane until the test ends.
func (r *testRelay) deliverer(tm *Tmux, pane, id string, mutate func(*Deliverer)) (*Deliverer, *syncBuffer) {
	logs := &syncBuffer{}
	d := &Deliverer{
		Tmux: tm, Pane: pane, Socket: r.cfg.Sockets[id], Credential: r.creds[id],
		StateFile: relayStatePath(tm.Socket),
		Logf:      func(f string, a ...any) { logs.Write([]byte(strings.TrimSpace(fmt.Sprintf(f, a...)) + "\n")) },
		Poll:      50 * time.Millisecond, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		Grace: -1,
	}
	if mutate != nil {
		mutate(d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { d.Run(ctx) })
	r.t.Cleanup(func() { cancel(); wg.Wait() })
	return d, logs
}

func waitRelayState(t *testing.T, socket, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for readRelayState(socket) != want {
		if time.Now().After(deadline) {
			t.Fatalf("relay state is %q, want %q", readRelayState(socket), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Operator sends, the pane gets it; the relay restarts, the next message
// still arrives; a delivery repeated by the relay (its ack lost) is pasted
// once.
func TestDeliveryFromRelay(t *testing.T) {
	r := startRelay(t, nil, "eng-1")
	tm, _ := testTmux(t)
	tm.SubmitDelay = 5 * time.Millisecond
	pane, file := recorder(t, tm, false)
	var (
		mu       sync.Mutex
		loseNext bool
	)
	_, logs := r.deliverer(tm, pane, "eng-1", func(d *Deliverer) {
		// Restart the relay between a paste and its ack: the ack is lost.
		d.afterPaste = func(m relay.Delivery) {
			mu.Lock()
			lose := loseNext
			loseNext = false
			mu.Unlock()
			if lose {
				r.stop()
				r.start()
			}
		}
	})
	want := ""
	r.send(relay.Operator, "eng-1", "please rebase on main")
	want += "[from operator] please rebase on main\r"
	waitFile(t, file, want)
	waitRelayState(t, tm.Socket, RelayConnected)

	r.stop()
	waitRelayState(t, tm.Socket, RelayConnecting)
	r.start()
	r.send(relay.Operator, "eng-1", "after a restart")
	want += "[from operator] after a restart\r"
	waitFile(t, file, want)

	mu.Lock()
	loseNext = true
	mu.Unlock()
	id := r.send(relay.Operator, "eng-1", "sent once, delivered twice")
	want += "[from operator] sent once, delivered twice\r"
	waitFile(t, file, want)
	// The relay delivers it again after its restart: acked (the next
	// message comes), not pasted.
	r.send(relay.Operator, "eng-1", "next")
	want += "[from operator] next\r"
	waitFile(t, file, want)
	time.Sleep(100 * time.Millisecond)
	waitFile(t, file, want)
	if !strings.Contains(logs.String(), fmt.Sprintf("dropped a repeat of message %d", id)) {
		t.Errorf("the relay never repeated message %d; logs:\n%s", id, logs.String())
	}
	if !strings.Contains(logs.String(), "connected as \"eng-1\"") {
		t.Errorf("logs:\n%s", logs.String())
	}
}

// A pane whose command exited gets nothing; its messages wait at the relay,
// in order, and arrive once it runs again.
func TestDeliveryWaitsForDeadPane(t *testing.T) {
	r := startRelay(t, map[string][]string{"eng-2": {"eng-1"}}, "eng-1", "eng-2")
	tm, _ := testTmux(t)
	tm.SubmitDelay = 5 * time.Millisecond
	pane := newSession(t, tm, echoLinger(t), "agent done")
	waitDead(t, tm, pane)
	// The grace lets the recorder put its terminal in raw mode first.
	_, logs := r.deliverer(tm, pane, "eng-1", func(d *Deliverer) { d.Grace = 300 * time.Millisecond })
	waitRelayState(t, tm.Socket, RelayWaitingPane)
	r.send("eng-2", "eng-1", "first")
	r.send(relay.Operator, "eng-1", "second")
	time.Sleep(300 * time.Millisecond)
	if out, _ := tm.Capture(context.Background(), pane, 0); strings.Contains(out, "first") {
		t.Fatalf("a message landed in a dead pane:\n%s", out)
	}
	if n := strings.Count(logs.String(), "messages wait at the relay"); n != 1 {
		t.Errorf("the wait was logged %d times:\n%s", n, logs.String())
	}

	// The agent comes back (as after a respawn): both arrive, in order.
	self, _ := os.Executable()
	file := filepath.Join(t.TempDir(), "typed")
	if _, err := tm.exec(context.Background(), "respawn-pane", "-k", "-t", pane, self, "raw-record", file); err != nil {
		t.Fatal(err)
	}
	waitFile(t, file, "[from eng-2] first\r[from operator] second\r")
	waitRelayState(t, tm.Socket, RelayConnected)

	// It exits while subscribed: the subscription ends at once, and the
	// next message waits at the relay.
	if _, err := tm.exec(context.Background(), "respawn-pane", "-k", "-t", pane, self, "echo-linger", "gone"); err != nil {
		t.Fatal(err)
	}
	waitDead(t, tm, pane)
	waitRelayState(t, tm.Socket, RelayWaitingPane)
	r.send(relay.Operator, "eng-1", "third")
	time.Sleep(200 * time.Millisecond)
	if out, _ := tm.Capture(context.Background(), pane, 0); strings.Contains(out, "third") {
		t.Fatalf("a message landed in a dead pane:\n%s", out)
	}
	if _, err := tm.exec(context.Background(), "respawn-pane", "-k", "-t", pane, self, "raw-record", file); err != nil {
		t.Fatal(err)
	}
	waitFile(t, file, "[from eng-2] first\r[from operator] second\r[from operator] third\r")
}

// init delivers when the container has a relay (here: the environment
// points at a test relay), and status says so.
func TestInitDeliversFromRelay(t *testing.T) {
	r := startRelay(t, nil, "eng-1")
	self, _ := os.Executable()
	file := filepath.Join(t.TempDir(), "typed")
	p := startInit(t, []string{EnvRelaySocket + "=" + r.cfg.Sockets["eng-1"], EnvCredential + "=" + r.creds["eng-1"]},
		self, "raw-record", file)
	p.waitStatus(t, func(s Status) bool { return s.Relay == RelayConnected })
	r.send(relay.Operator, "eng-1", "hello from the operator")
	waitFile(t, file, "[from operator] hello from the operator\r")
	out, _, code := runMain("status", "--socket", p.tm.Socket)
	if code != 0 || !strings.Contains(out, `"relay":"connected"`) {
		t.Errorf("status = %d %q", code, out)
	}
	r.stop()
	p.waitStatus(t, func(s Status) bool { return s.Relay == RelayConnecting })
}

func TestInitWithoutRelayIsOff(t *testing.T) {
	dir := t.TempDir()
	p := startInit(t, []string{EnvRelaySocket + "=" + filepath.Join(dir, "none", "relay.sock"), EnvCredential + "=" + filepath.Join(dir, "cred")},
		"/bin/sleep", "30")
	st := p.waitStatus(t, func(s Status) bool { return s.PID != nil })
	if st.Relay != RelayOff {
		t.Errorf("relay = %q, want off", st.Relay)
	}
	// init logs it just after the session is up, which status may see first.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(p.stderr.String(), "message delivery is off"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("stderr = %q", p.stderr.String())
		}
	}
}
