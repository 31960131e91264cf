package relay

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runner-dev/runner/internal/audit"
)

func TestDeliveryCarriesTheAuthenticatedSender(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.start()
	inbox := h.subscribe("eng-2")
	op, eng1 := h.dial(Operator), h.dial("eng-1")
	if op.ID() != Operator || eng1.ID() != "eng-1" {
		t.Fatalf("IDs %q %q", op.ID(), eng1.ID())
	}
	id1, err := op.Send("eng-2", "secret plan from the operator")
	if err != nil {
		t.Fatal(err)
	}
	id2, err := eng1.Send("eng-2", "reply from eng-1")
	if err != nil {
		t.Fatal(err)
	}
	got := receive(t, inbox, 2)
	want := []Delivery{
		{ID: id1, From: Operator, Kind: "message", Body: "secret plan from the operator"},
		{ID: id2, From: "eng-1", Kind: "message", Body: "reply from eng-1"},
	}
	for i := range want {
		got[i].Time = time.Time{}
		if got[i] != want[i] {
			t.Errorf("delivery %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	h.waitFor("deliver", func(a auditLine) bool {
		return a.Event == "deliver" && a.Actor == "eng-1" && a.Target == "eng-2" && strings.Contains(a.Detail, fmt.Sprint("id=", id2))
	})
	b, _ := os.ReadFile(h.auditPath)
	if strings.Contains(string(b), "secret plan") {
		t.Error("the audit log contains a message body")
	}
	if !strings.Contains(string(b), digest("secret plan from the operator")) {
		t.Error("the audit log lacks the body's digest")
	}
	if n, err := audit.Verify(h.auditPath); err != nil || n == 0 {
		t.Errorf("audit.Verify = %d, %v", n, err)
	}
}

func TestACL(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.start()
	eng2, eng1, op := h.dial("eng-2"), h.dial("eng-1"), h.dial(Operator)

	_, err := eng2.Send("eng-3", "hi")
	wantCode(t, err, CodeForbidden)
	h.waitFor("deny", func(a auditLine) bool { return a.Event == "deny" && a.Actor == "eng-2" && a.Target == "eng-3" })
	// A name the sender may not reach is forbidden whether or not it exists,
	// so the ACL does not leak who is in the run.
	_, err = eng2.Send("ghost", "hi")
	wantCode(t, err, CodeForbidden)
	_, err = eng1.Send("eng-9", "hi")
	wantCode(t, err, CodeUnknownRecipient)
	_, err = eng1.Send("../eng-2", "hi")
	wantCode(t, err, CodeUnknownRecipient)
	_, err = eng1.SendMessage(Message{To: "eng-2", Body: "do this", Kind: "brief"})
	wantCode(t, err, CodeForbidden)
	if _, err := op.SendMessage(Message{To: "eng-2", Body: "your brief", Kind: "brief"}); err != nil {
		t.Errorf("operator brief: %v", err)
	}
	if _, err := op.Send("eng-3", "operator reaches anyone"); err != nil {
		t.Errorf("operator send: %v", err)
	}

	for id, want := range map[*Client][]string{
		eng2: {"eng-1"},
		eng1: {"eng-2", "eng-3"},
		op:   {"eng-1", "eng-2", "eng-3"},
	} {
		got, err := id.Peers()
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%s peers = %v, %v; want %v", id.ID(), got, err, want)
		}
	}
}

func TestHelloRejected(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.start()
	valid := h.cfg.Credentials["eng-1"]
	forged, _ := GenerateCredential()
	cases := map[string]any{
		"wrong token":        map[string]any{"v": 1, "type": "hello", "token": forged},
		"token of wrong len": map[string]any{"v": 1, "type": "hello", "token": valid[:40]},
		"missing token":      map[string]any{"v": 1, "type": "hello"},
		"identity field":     map[string]any{"v": 1, "type": "hello", "token": valid, "id": Operator},
		"from field":         map[string]any{"v": 1, "type": "hello", "token": valid, "from": Operator},
		"case-folded key":    map[string]any{"v": 1, "Type": "hello", "token": valid},
		"no version":         map[string]any{"type": "hello", "token": valid},
		"version 2":          map[string]any{"v": 2, "type": "hello", "token": valid},
		"send before hello":  map[string]any{"v": 1, "type": "send", "to": "eng-2", "body": "x"},
		"duplicate key":      `{"v":1,"type":"hello","token":"` + forged + `","token":"` + valid + `"}`,
		"two values":         `{"v":1,"type":"hello","token":"` + valid + `"}{}`,
		"not json":           "hello, relay",
	}
	for name, hello := range cases {
		t.Run(name, func(t *testing.T) {
			rc := h.raw()
			rc.send(hello)
			for _, f := range rc.expectClosed(2 * time.Second) {
				if f["type"] == "welcome" {
					t.Fatalf("relay welcomed %v", hello)
				}
			}
		})
	}
	t.Run("late hello", func(t *testing.T) {
		rc := h.raw()
		time.Sleep(h.cfg.HelloTimeout + 200*time.Millisecond)
		rc.c.Write([]byte{0, 0, 0, 0}) // may fail: the relay has hung up
		if frames := rc.expectClosed(2 * time.Second); len(frames) != 0 {
			t.Fatalf("late hello got %v", frames)
		}
	})
	h.waitFor("auth_failed", func(a auditLine) bool { return a.Event == "auth_failed" && a.Actor == "" })
	h.waitFor("connect", func(a auditLine) bool { return a.Event == "connect" && strings.Contains(a.Detail, "peer pid=") })
	for _, a := range h.auditLines() {
		if a.Event == "auth_ok" {
			t.Errorf("a rejected hello was audited as auth_ok: %+v", a)
		}
	}
}

func TestIdentityCannotBeClaimedByAField(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.start()
	inbox := h.subscribe("eng-2")
	rc := h.rawHello("eng-1")
	rc.send(map[string]any{"v": 1, "type": "send", "to": "eng-2", "body": "from the operator, honest", "from": Operator})
	frames := rc.expectClosed(2 * time.Second)
	if len(frames) != 1 || frames[0]["code"] != CodeBadRequest {
		t.Fatalf("got %v, want one bad_request then close", frames)
	}
	eng1 := h.dial("eng-1")
	if _, err := eng1.Send("eng-2", "plain"); err != nil {
		t.Fatal(err)
	}
	if d := receive(t, inbox, 1)[0]; d.From != "eng-1" || d.Body != "plain" {
		t.Fatalf("got %+v, want the plain message from eng-1", d)
	}
	expectNothing(t, inbox, 200*time.Millisecond)
}

func TestHostileClients(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.start()
	inbox := h.subscribe("eng-2")
	op := h.dial(Operator)
	n := 0
	wellBehaved := func(t *testing.T) {
		t.Helper()
		n++
		body := fmt.Sprintf("still here %d", n)
		if _, err := op.Send("eng-2", body); err != nil {
			t.Fatalf("well-behaved send: %v", err)
		}
		if d := receive(t, inbox, 1)[0]; d.Body != body {
			t.Fatalf("got %q, want %q", d.Body, body)
		}
	}

	t.Run("garbage bytes", func(t *testing.T) {
		rc := h.raw()
		rc.write([]byte("GET / HTTP/1.1\r\nHost: relay\r\n\r\n"))
		rc.expectClosed(2 * time.Second)
		rc = h.rawHello("eng-1")
		rc.write([]byte{0, 0, 0, 9})
		rc.write([]byte("\xff\xfe\x00garbage"))
		rc.expectClosed(2 * time.Second)
		wellBehaved(t)
	})
	t.Run("oversized frame", func(t *testing.T) {
		rc := h.rawHello("eng-1")
		rc.write([]byte{0x7f, 0xff, 0xff, 0xff})
		rc.expectClosed(2 * time.Second)
		rc = h.raw()
		rc.send(`{"v":1,"type":"hello","token":"` + strings.Repeat("a", 2000) + `"}`)
		rc.expectClosed(2 * time.Second)
		wellBehaved(t)
	})
	t.Run("half-written frame", func(t *testing.T) {
		rc := h.rawHello("eng-1")
		rc.write([]byte{0, 0, 0, 100, '{', '"', 'v'})
		start := time.Now()
		rc.expectClosed(h.cfg.FrameTimeout + 2*time.Second)
		if d := time.Since(start); d < h.cfg.FrameTimeout/2 {
			t.Errorf("closed after %s, before FrameTimeout", d)
		}
		pre := h.raw()
		pre.write([]byte{0, 0})
		pre.expectClosed(h.cfg.HelloTimeout + 2*time.Second)
		wellBehaved(t)
	})
	t.Run("2000 connections", func(t *testing.T) {
		conns := make([]*raw, 0, 2000)
		for range 2000 {
			conns = append(conns, h.raw())
		}
		wellBehaved(t)
		for _, rc := range conns {
			rc.c.Close()
		}
		h.waitFor("conn_limit", func(a auditLine) bool { return a.Event == "conn_limit" })
		// Once the flood is gone, new connections get in again.
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			c, err := Dial(ctx, h.cfg.Sockets["eng-1"], h.cfg.Credentials["eng-1"])
			cancel()
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cannot connect after the flood: %v", err)
			}
		}
	})
	t.Run("flood above the rate limit", func(t *testing.T) {
		flooder := h.dial("eng-3")
		limited, accepted := 0, 0
		start := time.Now()
		for i := range 200 {
			_, err := flooder.Send("eng-1", fmt.Sprint("flood ", i))
			if err == nil {
				accepted++
				continue
			}
			wantCode(t, err, CodeRateLimited)
			limited++
		}
		allowed := h.srv.cfg.RateLimit.Burst + int(time.Since(start).Seconds()*h.srv.cfg.RateLimit.PerSecond) + 1
		if limited == 0 || accepted > allowed {
			t.Fatalf("accepted %d (limit %d), rate-limited %d", accepted, allowed, limited)
		}
		h.waitFor("rate_limited", func(a auditLine) bool { return a.Event == "rate_limited" && a.Actor == "eng-3" })
		wellBehaved(t)
	})
}

// A client that sends requests but never reads the replies is dropped after
// WriteTimeout, and the relay keeps serving others meanwhile.
func TestNonReaderIsDropped(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) {
		c.RateLimit = Rate{PerSecond: 1e6, Burst: 1e6}
		c.WriteTimeout = 3 * time.Second
	})
	h.start()
	inbox := h.subscribe("eng-2")
	op := h.dial(Operator)
	big := strings.Repeat("x", h.srv.cfg.MaxMessage)
	for range inboxSize {
		if _, err := op.Send("eng-2", big); err != nil {
			t.Fatal(err)
		}
	}
	receive(t, inbox, inboxSize)
	h.waitFor("last deliver", func(a auditLine) bool {
		return a.Event == "deliver" && strings.Contains(a.Detail, fmt.Sprint("id=", inboxSize))
	})

	rc := h.rawHello("eng-2")
	for range 20 { // each reply is ~800 KiB: far more than the socket buffers
		rc.send(map[string]any{"v": 1, "type": "inbox", "n": inboxSize})
	}
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	if _, err := op.Peers(); err != nil {
		t.Fatalf("relay wedged by a non-reader: %v", err)
	}
	if time.Since(start) > h.cfg.WriteTimeout/2 {
		t.Errorf("a request took %s while a non-reader was blocked", time.Since(start))
	}
	time.Sleep(h.cfg.WriteTimeout + 500*time.Millisecond)
	if frames := rc.expectClosed(5 * time.Second); len(frames) >= 20 {
		t.Fatalf("the non-reader got all %d replies; want it dropped", len(frames))
	}
}

func TestQueueFull(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.QueueLimit = 3 })
	h.start()
	op := h.dial(Operator)
	for i := range 3 {
		if _, err := op.Send("eng-1", fmt.Sprint("m", i)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := op.Send("eng-1", "one too many")
	wantCode(t, err, CodeQueueFull)
	h.waitFor("queue_full", func(a auditLine) bool { return a.Event == "queue_full" && a.Target == "eng-1" })
	inbox := h.subscribe("eng-1")
	for i, d := range receive(t, inbox, 3) {
		if d.Body != fmt.Sprint("m", i) {
			t.Errorf("delivery %d = %q", i, d.Body)
		}
	}
	expectNothing(t, inbox, 100*time.Millisecond) // the refused one was not queued
	if _, err := op.Send("eng-1", "room again"); err != nil {
		t.Fatalf("after draining: %v", err)
	}
}

func TestDuplicateClientIDAcceptedOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.start()
	eng1 := h.dial("eng-1")
	m := Message{To: "eng-2", Body: "exactly once", ClientID: NewClientID()}
	id1, err := eng1.SendMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	// The retry a client makes when the first reply was lost, on a new
	// connection.
	id2, err := h.dial("eng-1").SendMessage(m)
	if err != nil || id2 != id1 {
		t.Fatalf("retry = %d, %v; want %d", id2, err, id1)
	}
	// Dedupe is per sender: another sender's equal client_id is its own.
	other, err := h.dial("eng-3").SendMessage(Message{To: "eng-2", Body: "mine", ClientID: m.ClientID})
	if err != nil || other == id1 {
		t.Fatalf("other sender = %d, %v", other, err)
	}
	inbox := h.subscribe("eng-2")
	got := receive(t, inbox, 2)
	if got[0].Body != "exactly once" || got[1].Body != "mine" {
		t.Fatalf("got %+v", got)
	}
	expectNothing(t, inbox, 200*time.Millisecond)
	h.waitFor("duplicate", func(a auditLine) bool { return a.Event == "send" && strings.Contains(a.Detail, "duplicate") })
}

func TestRestartDeliversEverythingOnceInOrder(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.start()
	op, eng2, eng1 := h.dial(Operator), h.dial("eng-2"), h.dial("eng-1")
	var want []string
	for i := range 5 {
		body := fmt.Sprint("from operator ", i)
		if _, err := op.Send("eng-1", body); err != nil {
			t.Fatal(err)
		}
		want = append(want, Operator+": "+body)
	}
	retry := Message{To: "eng-1", Body: "from eng-2", ClientID: NewClientID()}
	id6, err := eng2.SendMessage(retry)
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, "eng-2: from eng-2")
	if _, _, err := eng1.Schedule(time.Second, "check-in: report progress"); err != nil {
		t.Fatal(err)
	}
	want = append(want, Runner+": check-in: report progress")
	// eng-3 gets and acknowledges one message before the restart: it must not
	// come again.
	acked := h.subscribe("eng-3")
	if _, err := op.Send("eng-3", "already handled"); err != nil {
		t.Fatal(err)
	}
	receive(t, acked, 1)
	h.waitFor("deliver to eng-3", func(a auditLine) bool { return a.Event == "deliver" && a.Target == "eng-3" })

	// Nothing is flushed at shutdown: the journal holds it all already, as it
	// would after a kill -9.
	j, err := os.ReadFile(filepath.Join(h.cfg.StateDir, "journal"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(j), `"to":"eng-1"`); n != 7 {
		t.Fatalf("journal holds %d records for eng-1 before the restart, want 6 messages and 1 check-in", n)
	}
	h.stop()
	h.start()

	inbox := h.subscribe("eng-1")
	var got []string
	var last uint64
	for _, d := range receive(t, inbox, len(want)) {
		got = append(got, d.From+": "+d.Body)
		if d.ID <= last {
			t.Errorf("id %d after %d: ids must increase per recipient", d.ID, last)
		}
		last = d.ID
	}
	if !slices.Equal(got, want) {
		t.Fatalf("after restart got\n%q\nwant\n%q", got, want)
	}
	expectNothing(t, inbox, 300*time.Millisecond)
	expectNothing(t, h.subscribe("eng-3"), 300*time.Millisecond)
	if id, err := h.dial("eng-2").SendMessage(retry); err != nil || id != id6 {
		t.Fatalf("resend after restart = %d, %v; want the original id %d", id, err, id6)
	}
}

func TestRedeliveredUntilAcked(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.AckTimeout = 300 * time.Millisecond })
	h.start()
	id, err := h.dial(Operator).Send("eng-1", "paste me")
	if err != nil {
		t.Fatal(err)
	}
	// A handler that fails (the pane was gone, say) leaves it unacknowledged.
	err = h.dial("eng-1").Subscribe(context.Background(), func(d Delivery) error {
		return fmt.Errorf("pane not ready")
	})
	if err == nil || !strings.Contains(err.Error(), "pane not ready") {
		t.Fatalf("Subscribe = %v", err)
	}
	// A subscriber that reads but never acks is cut off after AckTimeout.
	rc := h.rawHello("eng-1")
	rc.send(map[string]any{"v": 1, "type": "subscribe"})
	if f := rc.read(); f["type"] != "ok" {
		t.Fatalf("subscribe: %v", f)
	}
	if f := rc.read(); f["type"] != "deliver" || f["id"] != float64(id) {
		t.Fatalf("got %v, want delivery %d", f, id)
	}
	rc.expectClosed(h.cfg.AckTimeout + 2*time.Second)
	// A wrong ack ends the subscription too.
	rc = h.rawHello("eng-1")
	rc.send(map[string]any{"v": 1, "type": "subscribe"})
	rc.read()
	rc.read()
	rc.send(map[string]any{"v": 1, "type": "ack", "id": id + 100})
	rc.expectClosed(2 * time.Second)

	d := receive(t, h.subscribe("eng-1"), 1)[0]
	if d.ID != id || d.Body != "paste me" {
		t.Fatalf("got %+v, want id %d again", d, id)
	}
	msgs, err := h.dial("eng-1").Inbox(0)
	if err != nil || len(msgs) != 1 || msgs[0].ID != id {
		t.Fatalf("inbox = %+v, %v", msgs, err)
	}
}

func TestSubscriptionReplacesOlder(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.start()
	old := h.rawHello("eng-1")
	old.send(map[string]any{"v": 1, "type": "subscribe"})
	old.read()
	inbox := h.subscribe("eng-1")
	old.expectClosed(2 * time.Second)
	if _, err := h.dial(Operator).Send("eng-1", "to the new one"); err != nil {
		t.Fatal(err)
	}
	if d := receive(t, inbox, 1)[0]; d.Body != "to the new one" {
		t.Fatalf("got %+v", d)
	}
}

func TestCheckins(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) {
		c.Checkins = []Checkin{{Agent: "eng-2", Every: time.Second, Message: "declared: status?"}}
		c.RateLimit = Rate{PerSecond: 1000, Burst: 1000}
	})
	h.start()
	eng2 := h.dial("eng-2")
	start := time.Now()
	_, due, err := eng2.Schedule(100*time.Millisecond, "self: floor is a second")
	if err != nil {
		t.Fatal(err)
	}
	if d := due.Sub(start); d < 900*time.Millisecond || d > 2*time.Second {
		t.Errorf("due in %s, want the 1s floor", d)
	}
	inbox := h.subscribe("eng-2")
	got := receive(t, inbox, 2)
	slices.SortFunc(got, func(a, b Delivery) int { return strings.Compare(a.Body, b.Body) })
	for i, body := range []string{"declared: status?", "self: floor is a second"} {
		if got[i].From != Runner || got[i].Kind != "checkin" || got[i].Body != body {
			t.Errorf("got %+v, want check-in %q from runner", got[i], body)
		}
	}
	if time.Since(start) < 900*time.Millisecond {
		t.Errorf("check-ins fired after %s, before they were due", time.Since(start))
	}
	// The declared one recurs.
	if d := receive(t, inbox, 1)[0]; d.Body != "declared: status?" {
		t.Errorf("got %+v, want the declared check-in again", d)
	}
	h.waitFor("fire", func(a auditLine) bool { return a.Event == "fire" && a.Actor == Runner && a.Target == "eng-2" })

	rc := h.rawHello("eng-2")
	for after, code := range map[string]any{"1.5m": "ok", "0.5s": "ok", "abc": CodeInvalid, "-1s": CodeInvalid, "0s": CodeInvalid, "200h": CodeInvalid} {
		rc.send(map[string]any{"v": 1, "type": "schedule", "after": after, "body": "x"})
		f := rc.read()
		if got := f["type"]; got != code && f["code"] != code {
			t.Errorf("schedule after %q: got %v, want %v", after, f, code)
		}
	}
	for range maxSchedules {
		if _, _, err := eng2.Schedule(time.Hour, "later"); err != nil {
			wantCode(t, err, CodeTooManySchedules)
			return
		}
	}
	t.Fatal("no limit on pending check-ins")
}

func TestInboxReturnsRecentDeliveries(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.start()
	inbox := h.subscribe("eng-1")
	op := h.dial(Operator)
	for i := range 3 {
		op.Send("eng-1", fmt.Sprint("m", i))
	}
	receive(t, inbox, 3)
	h.waitFor("third deliver", func(a auditLine) bool { return a.Event == "deliver" && strings.Contains(a.Detail, "id=3 ") })
	eng1 := h.dial("eng-1")
	all, err := eng1.Inbox(0)
	if err != nil || len(all) != 3 || all[0].Body != "m0" || all[2].Body != "m2" {
		t.Fatalf("inbox = %+v, %v", all, err)
	}
	last, err := eng1.Inbox(1)
	if err != nil || len(last) != 1 || last[0].Body != "m2" {
		t.Fatalf("inbox(1) = %+v, %v", last, err)
	}
	if other, _ := h.dial("eng-2").Inbox(0); len(other) != 0 {
		t.Fatalf("eng-2 sees eng-1's inbox: %+v", other)
	}
}

func TestRequestValidation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.start()
	eng1 := h.dial("eng-1")
	for name, m := range map[string]Message{
		"too large":      {To: "eng-2", Body: strings.Repeat("x", h.srv.cfg.MaxMessage+1)},
		"NUL":            {To: "eng-2", Body: "a\x00b"},
		"bad kind":       {To: "eng-2", Body: "x", Kind: "checkin"},
		"bad client_id":  {To: "eng-2", Body: "x", ClientID: "a b"},
		"long client_id": {To: "eng-2", Body: "x", ClientID: strings.Repeat("a", 65)},
	} {
		_, err := eng1.SendMessage(m)
		var re *Error
		if !errors.As(err, &re) || re.Code != CodeInvalid {
			t.Errorf("%s: got %v, want %s", name, err, CodeInvalid)
		}
	}
	if _, err := eng1.Send("eng-2", strings.Repeat("é", h.srv.cfg.MaxMessage/2)); err != nil {
		t.Errorf("a body of exactly MaxMessage bytes: %v", err)
	}
	h.waitFor("invalid", func(a auditLine) bool { return a.Event == "invalid" && a.Actor == "eng-1" })
}

func TestConnectionsPerIdentityAreBounded(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.RateLimit = Rate{PerSecond: 1000, Burst: 1000} })
	h.start()
	for range maxConnsPerIdentity {
		h.rawHello("eng-3")
	}
	rc := h.rawOn("eng-3")
	rc.send(map[string]any{"v": 1, "type": "hello", "token": h.cfg.Credentials["eng-3"]})
	if f := rc.read(); f["code"] != CodeTooManyConnections {
		t.Fatalf("got %v, want %s", f, CodeTooManyConnections)
	}
	h.dial("eng-1") // others are unaffected
}
