package relay

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// fill sends from c to "to" until the relay answers queue_full, and returns
// how many it accepted.
func fill(t *testing.T, c *Client, to string) int {
	t.Helper()
	for n := 0; n < 10000; n++ {
		if _, err := c.Send(to, fmt.Sprint("flood ", n)); err != nil {
			wantCode(t, err, CodeQueueFull)
			return n
		}
	}
	t.Fatalf("the relay took 10000 messages for %s without queue_full", to)
	return 0
}

// One agent sending at its full rate gets its share of a recipient's queue,
// not all of it: another agent still gets its share, and the operator its
// reserve on top.
func TestQueueFairShareAndOperatorReserve(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) {
		c.QueueLimit = 20
		c.RateLimit = Rate{PerSecond: 1e6, Burst: 1e6}
	})
	h.start()
	// eng-1 (eng-*) and eng-3 (eng-*) may reach eng-2: 20, less 5 for the
	// operator, shared by 2 is 7 each. Nobody subscribes as eng-2.
	if got := fill(t, h.dial("eng-1"), "eng-2"); got != 7 {
		t.Errorf("eng-1 got %d messages into eng-2's queue, want its share of 7", got)
	}
	if got := fill(t, h.dial("eng-3"), "eng-2"); got != 7 {
		t.Errorf("eng-3 got %d messages in after eng-1's flood, want its own share of 7", got)
	}
	op := h.dial(Operator)
	if got := fill(t, op, "eng-2"); got != 6 {
		t.Errorf("the operator got %d in, want the 6 left of QueueLimit (at least its reserve of 5)", got)
	}
	h.waitFor("queue_full", func(a auditLine) bool { return a.Event == "queue_full" && a.Actor == "eng-1" && a.Target == "eng-2" })
	// Deliveries free shares again.
	inbox := h.subscribe("eng-2")
	receive(t, inbox, 20)
	if _, err := h.dial("eng-1").Send("eng-2", "room again"); err != nil {
		t.Fatalf("after the queue drained: %v", err)
	}
}

// With one agent able to reach a recipient, it may fill everything but the
// operator's reserve.
func TestOperatorReserveAgainstOneFlooder(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) {
		c.QueueLimit = 40
		c.RateLimit = Rate{PerSecond: 1e6, Burst: 1e6}
	})
	h.start()
	// Only eng-3 may reach the operator, so its share is all the agents'
	// part: 40 less the operator's reserve of 10. The reserve stays free
	// (for the operator's notes to itself, here).
	if got := fill(t, h.dial("eng-3"), Operator); got != 30 {
		t.Errorf("eng-3 got %d messages into the operator's queue, want 30 (40 less the reserve of 10)", got)
	}
	op := h.dial(Operator)
	for i := range 10 {
		if _, err := op.Send(Operator, fmt.Sprint("note to self ", i)); err != nil {
			t.Fatalf("operator message %d refused while an agent flooded: %v", i, err)
		}
	}
}

// Self-scheduled check-ins count against the same bound whether pending or
// fired and undelivered, so an agent cannot grow its own queue without end.
func TestSelfScheduledCheckinsAreBounded(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	h := newHarness(t, func(c *Config) {
		c.Now = clock
		c.RateLimit = Rate{PerSecond: 1e6, Burst: 1e6}
	})
	h.start()
	c := h.dial("eng-1")
	for round := range 3 {
		accepted := 0
		for i := 0; i < 2*maxSchedules; i++ {
			if _, _, err := c.Schedule(time.Second, "wake up"); err != nil {
				wantCode(t, err, CodeTooManySchedules)
				break
			}
			accepted++
		}
		mu.Lock()
		now = now.Add(2 * time.Second)
		mu.Unlock()
		h.srv.fireDue(clock())
		h.srv.mu.Lock()
		queued := len(h.srv.queues["eng-1"])
		h.srv.mu.Unlock()
		if queued > maxSchedules {
			t.Fatalf("round %d: %d check-ins queued for eng-1 (accepted %d more), want at most %d", round, queued, accepted, maxSchedules)
		}
		if round > 0 && accepted != 0 {
			t.Errorf("round %d: %d more check-ins accepted while %d undelivered ones sit in the queue", round, accepted, queued)
		}
	}
	// Once delivered, there is room again.
	receive(t, h.subscribe("eng-1"), maxSchedules)
	if _, _, err := c.Schedule(time.Second, "again"); err != nil {
		t.Fatalf("schedule after the check-ins were delivered: %v", err)
	}
}

// The operator reads its queue with pending and removes what it handled
// with take; the rest survives a restart. Agents may do neither.
func TestOperatorInbox(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.start()
	e3 := h.dial("eng-3")
	var ids []uint64
	for i := range 3 {
		id, err := e3.Send(Operator, fmt.Sprint("report ", i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	op := h.dial(Operator)
	got, err := op.Pending(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].From != "eng-3" || got[0].Body != "report 0" || got[2].ID != ids[2] {
		t.Fatalf("pending = %+v, want the three reports from eng-3 in order", got)
	}
	if again, _ := op.Pending(1); len(again) != 1 || again[0].ID != ids[0] {
		t.Fatalf("pending again = %+v: pending must not remove anything", again)
	}
	if n, err := op.Take(ids[1]); err != nil || n != 2 {
		t.Fatalf("take up to the second = %d, %v; want 2", n, err)
	}
	h.stop()
	h.start()
	op = h.dial(Operator)
	got, _ = op.Pending(0)
	if len(got) != 1 || got[0].ID != ids[2] {
		t.Fatalf("after a restart, pending = %+v, want only the third report", got)
	}
	if n, _ := op.Take(ids[2]); n != 1 {
		t.Fatalf("take the last = %d", n)
	}
	if got, _ := op.Pending(0); len(got) != 0 {
		t.Fatalf("pending after taking all = %+v", got)
	}
	if hist, _ := op.Inbox(0); len(hist) != 3 {
		t.Errorf("the operator's inbox history holds %d, want the 3 taken", len(hist))
	}
	h.waitFor("deliver", func(a auditLine) bool { return a.Event == "deliver" && a.Target == Operator && a.Actor == "eng-3" })
	for _, id := range []string{"eng-1", "eng-3"} {
		c := h.dial(id)
		if _, err := c.Pending(0); err == nil {
			t.Errorf("%s read a queue with pending", id)
		} else {
			wantCode(t, err, CodeForbidden)
		}
		if _, err := c.Take(1 << 40); err == nil {
			t.Errorf("%s took from a queue", id)
		} else {
			wantCode(t, err, CodeForbidden)
		}
	}
}
