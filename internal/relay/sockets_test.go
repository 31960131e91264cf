package relay

import (
	"context"
	"strings"
	"testing"
	"time"
)

// A flood of connections that never say hello, on one agent's socket, takes
// only that socket's pre-login slots: another agent and the operator still
// log in, send and ask for stats. With one shared socket and one global
// limit, this flood locked everyone out.
func TestPreLoginFloodIsPerSocket(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) {
		c.HelloTimeout = 30 * time.Second // the flood holds its slots for the whole test
		c.RateLimit = Rate{PerSecond: 1000, Burst: 1000}
	})
	h.start()
	inbox := h.subscribe("eng-2")
	var flood []*raw
	for range 600 {
		flood = append(flood, h.rawOn("eng-1"))
	}
	h.waitFor("conn_limit on eng-1's socket", func(a auditLine) bool { return a.Event == "conn_limit" && a.Target == "eng-1" })

	for i := range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		op, err := Dial(ctx, h.cfg.Sockets[Operator], h.cfg.Credentials[Operator])
		cancel()
		if err != nil {
			t.Fatalf("operator login %d during the flood: %v", i, err)
		}
		if _, err := op.Send("eng-2", "operator during the flood"); err != nil {
			t.Fatalf("operator send during the flood: %v", err)
		}
		if _, err := op.Stats(); err != nil {
			t.Fatalf("stats during the flood: %v", err)
		}
		op.Close()
		ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
		e3, err := Dial(ctx, h.cfg.Sockets["eng-3"], h.cfg.Credentials["eng-3"])
		cancel()
		if err != nil {
			t.Fatalf("eng-3 login %d during the flood: %v", i, err)
		}
		if _, err := e3.Send("eng-2", "eng-3 during the flood"); err != nil {
			t.Fatalf("eng-3 send during the flood: %v", err)
		}
		e3.Close()
	}
	receive(t, inbox, 10)
	// The flooded socket itself is full: its own agent waits for the flood.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if c, err := Dial(ctx, h.cfg.Sockets["eng-1"], h.cfg.Credentials["eng-1"]); err == nil {
		c.Close()
		t.Error("eng-1 logged in on its own socket while 600 connections held its pre-login slots")
	}
	for _, rc := range flood {
		rc.c.Close()
	}
}

// The socket a connection arrived on is a second check on identity: a valid
// credential on another identity's socket is refused and audited.
func TestCredentialOnAnotherSocketIsRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.start()
	for _, tc := range []struct{ cred, sock string }{
		{"eng-1", "eng-2"},
		{Operator, "eng-1"},
		{"eng-1", Operator},
	} {
		rc := h.rawOn(tc.sock)
		rc.send(map[string]any{"v": 1, "type": "hello", "token": h.cfg.Credentials[tc.cred]})
		frames := rc.expectClosed(2 * time.Second)
		if len(frames) != 1 || frames[0]["code"] != CodeUnauthorized || !strings.Contains(frames[0]["reason"].(string), "socket") {
			t.Errorf("%s's credential on %s's socket: got %v, want one unauthorized then close", tc.cred, tc.sock, frames)
		}
		h.waitFor("wrong_socket", func(a auditLine) bool {
			return a.Event == "wrong_socket" && a.Actor == tc.cred && a.Target == tc.sock
		})
	}
	for _, a := range h.auditLines() {
		if a.Event == "auth_ok" {
			t.Errorf("a credential on the wrong socket was audited as auth_ok: %+v", a)
		}
	}
	h.dial("eng-1") // on its own socket it is welcome
}
