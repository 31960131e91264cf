package relay

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runner-dev/runner/internal/audit"
)

// harness runs a real relay on a unix socket in a temp dir.
type harness struct {
	t         testing.TB
	cfg       Config
	auditPath string
	srv       *Server
	cancel    context.CancelFunc
	done      chan error
	// beforeServe, if set, runs between New and Serve.
	beforeServe func(*Server)
}

var testIdentities = []string{Operator, "eng-1", "eng-2", "eng-3"}

func credentialsFor(t testing.TB, ids ...string) map[string]string {
	t.Helper()
	creds := make(map[string]string)
	for _, id := range ids {
		var err error
		if creds[id], err = GenerateCredential(); err != nil {
			t.Fatal(err)
		}
	}
	return creds
}

func newHarness(t testing.TB, mutate func(*Config)) *harness {
	t.Helper()
	// Socket paths are limited to 107 bytes; t.TempDir can be longer.
	sockDir, err := os.MkdirTemp("", "relay")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	dir := t.TempDir()
	auditPath := filepath.Join(dir, "audit.log")
	log, err := audit.Open(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	creds := credentialsFor(t, testIdentities...)
	cfg := Config{
		Run:         "test",
		StateDir:    filepath.Join(dir, "state"),
		Credentials: creds,
		ACL: map[string][]string{
			"eng-1": {"eng-*"},
			"eng-2": {"eng-1"},
			"eng-3": {"eng-*", Operator},
		},
		Audit:        log,
		HelloTimeout: 500 * time.Millisecond,
		FrameTimeout: 300 * time.Millisecond,
		WriteTimeout: time.Second,
		AckTimeout:   2 * time.Second,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	if cfg.Sockets == nil {
		cfg.Sockets = socketsIn(sockDir, cfg.Credentials)
	}
	h := &harness{t: t, cfg: cfg, auditPath: auditPath}
	t.Cleanup(func() {
		if h.cancel != nil {
			h.stop()
		}
	})
	return h
}

// socketsIn gives every identity a socket of its own in dir.
func socketsIn(dir string, creds map[string]string) map[string]string {
	socks := make(map[string]string)
	for id := range creds {
		socks[id] = filepath.Join(dir, id+".sock")
	}
	return socks
}

// start creates a Server from h.cfg and serves it until stop.
func (h *harness) start() {
	h.t.Helper()
	srv, err := New(h.cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	if h.beforeServe != nil {
		h.beforeServe(srv)
	}
	started := h.count("relay_start")
	ctx, cancel := context.WithCancel(context.Background())
	h.srv, h.cancel, h.done = srv, cancel, make(chan error, 1)
	go func() { h.done <- srv.Serve(ctx) }()
	// relay_start is logged once the socket is listening with its final mode.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if h.count("relay_start") > started {
			return
		}
		select {
		case err := <-h.done:
			h.t.Fatalf("Serve returned early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			h.t.Fatal("relay socket did not appear")
		}
	}
}

// stop cancels Serve without any graceful hand-over and waits for it.
func (h *harness) stop() {
	h.t.Helper()
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		h.t.Fatal("Serve did not return after cancel")
	}
}

func (h *harness) dial(id string) *Client {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, h.cfg.Sockets[id], h.cfg.Credentials[id])
	if err != nil {
		h.t.Fatalf("dial as %s: %v", id, err)
	}
	h.t.Cleanup(func() { c.Close() })
	return c
}

// subscribe collects id's deliveries (acknowledging each) until the test ends.
func (h *harness) subscribe(id string) <-chan Delivery {
	h.t.Helper()
	c := h.dial(id)
	ch := make(chan Delivery, 10000)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		c.Subscribe(ctx, func(d Delivery) error { ch <- d; return nil })
	})
	h.t.Cleanup(func() { cancel(); wg.Wait() })
	h.waitFor("subscribe", func(a auditLine) bool { return a.Event == "subscribe" && a.Actor == id })
	return ch
}

func receive(t *testing.T, ch <-chan Delivery, n int) []Delivery {
	t.Helper()
	var out []Delivery
	timeout := time.After(10 * time.Second)
	for len(out) < n {
		select {
		case d := <-ch:
			out = append(out, d)
		case <-timeout:
			t.Fatalf("received %d of %d deliveries: %+v", len(out), n, out)
		}
	}
	return out
}

func expectNothing(t *testing.T, ch <-chan Delivery, wait time.Duration) {
	t.Helper()
	select {
	case d := <-ch:
		t.Fatalf("unexpected delivery %+v", d)
	case <-time.After(wait):
	}
}

type auditLine struct {
	Event, Actor, Target, Detail string
}

func (h *harness) auditLines() []auditLine {
	h.t.Helper()
	b, err := os.ReadFile(h.auditPath)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []auditLine
	for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var a auditLine
		if err := json.Unmarshal(l, &a); err != nil {
			h.t.Fatalf("audit line %q: %v", l, err)
		}
		out = append(out, a)
	}
	return out
}

func (h *harness) count(event string) int {
	n := 0
	for _, a := range h.auditLines() {
		if a.Event == event {
			n++
		}
	}
	return n
}

// waitFor waits until the audit log has a line matching ok.
func (h *harness) waitFor(what string, ok func(auditLine) bool) auditLine {
	h.t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, a := range h.auditLines() {
			if ok(a) {
				return a
			}
		}
	}
	h.t.Fatalf("no %s line in the audit log", what)
	return auditLine{}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var re *Error
	if !errors.As(err, &re) || re.Code != code {
		t.Fatalf("got error %v, want relay error %s", err, code)
	}
}

// Raw connections, for speaking the protocol wrongly on purpose.

type raw struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

// raw is a raw connection to eng-1's socket.
func (h *harness) raw() *raw {
	h.t.Helper()
	return h.rawOn("eng-1")
}

// rawOn is a raw connection to id's socket.
func (h *harness) rawOn(id string) *raw {
	h.t.Helper()
	c, err := net.Dial("unix", h.cfg.Sockets[id])
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	return &raw{t: h.t, c: c, r: bufio.NewReader(c)}
}

// rawHello is a raw connection authenticated as id.
func (h *harness) rawHello(id string) *raw {
	h.t.Helper()
	rc := h.rawOn(id)
	rc.send(map[string]any{"v": 1, "type": "hello", "token": h.cfg.Credentials[id]})
	if f := rc.read(); f["type"] != "welcome" {
		h.t.Fatalf("hello as %s: got %v", id, f)
	}
	return rc
}

func (rc *raw) send(v any) {
	rc.t.Helper()
	var b []byte
	switch v := v.(type) {
	case string:
		b = []byte(v)
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			rc.t.Fatal(err)
		}
	}
	// One write: a relay that rejects the frame on its length alone may
	// close before a second write, which would then fail with EPIPE.
	rc.write(append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...))
}

func (rc *raw) write(b []byte) {
	rc.t.Helper()
	rc.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := rc.c.Write(b); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

func (rc *raw) read() map[string]any {
	rc.t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := readFrame(rc.r, 1<<24)
	if err != nil {
		rc.t.Fatalf("read: %v", err)
	}
	var f map[string]any
	if err := json.Unmarshal(b, &f); err != nil {
		rc.t.Fatal(err)
	}
	return f
}

// expectClosed reads until the relay closes the connection, failing if that
// takes longer than within. It returns the frames read on the way.
func (rc *raw) expectClosed(within time.Duration) []map[string]any {
	rc.t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(within))
	var frames []map[string]any
	for {
		b, err := readFrame(rc.r, 1<<24)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
			return frames
		}
		if err != nil {
			rc.t.Fatalf("connection not closed by the relay within %s: %v", within, err)
		}
		var f map[string]any
		json.Unmarshal(b, &f)
		frames = append(frames, f)
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}
