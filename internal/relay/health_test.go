package relay

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestIdleCheckins(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) {
		c.Checkins = []Checkin{
			{Agent: "eng-2", AfterIdle: 10 * time.Second, Message: "idle 10s"},
			{Agent: "eng-2", AfterIdle: 1500 * time.Millisecond, Message: "idle 1.5s"}, // counts as 2s
			{Agent: "eng-2", AfterIdle: 2 * time.Second, Message: "idle 2s"},
			{Agent: "eng-2", Every: time.Hour, Message: "hourly"},
			{Agent: "eng-3", AfterIdle: time.Second, Message: "eng-3 idle"},
		}
		c.RateLimit = Rate{PerSecond: 1000, Burst: 1000}
	})
	h.start()
	eng2 := h.dial("eng-2")
	if got := eng2.IdleAfter(); !slices.Equal(got, []int{2, 10}) {
		t.Errorf("eng-2's welcome idle_after = %v, want [2 10]", got)
	}
	if got := h.dial("eng-1").IdleAfter(); len(got) != 0 {
		t.Errorf("eng-1 has no after_idle check-ins, welcome says %v", got)
	}

	// Below every threshold: nothing.
	if n, err := eng2.Idle(1); err != nil || n != 0 {
		t.Fatalf("idle 1s = %d, %v; want 0 fired", n, err)
	}
	h.waitFor("idle", func(a auditLine) bool { return a.Event == "idle" && a.Actor == "eng-2" })

	// 3s crosses the 2s threshold: both 2s check-ins fire, not the 10s one.
	inbox := h.subscribe("eng-2")
	if n, err := eng2.Idle(3); err != nil || n != 2 {
		t.Fatalf("idle 3s = %d, %v; want 2 fired", n, err)
	}
	got := receive(t, inbox, 2)
	bodies := []string{got[0].Body, got[1].Body}
	slices.Sort(bodies)
	if !slices.Equal(bodies, []string{"idle 1.5s", "idle 2s"}) || got[0].From != Runner || got[0].Kind != "checkin" {
		t.Errorf("got %+v, want the two 2s check-ins from runner", got)
	}
	h.waitFor("second deliver", func(a auditLine) bool {
		return a.Event == "deliver" && a.Target == "eng-2" && strings.Contains(a.Detail, "kind=checkin") && h.count("deliver") >= 2
	})

	// 12s: the longest crossed (10s) fires alone.
	if n, err := eng2.Idle(12); err != nil || n != 1 {
		t.Fatalf("idle 12s = %d, %v; want 1 fired", n, err)
	}
	if d := receive(t, inbox, 1)[0]; d.Body != "idle 10s" {
		t.Errorf("got %+v, want the 10s check-in", d)
	}
	expectNothing(t, inbox, 200*time.Millisecond) // the hourly one is not due

	// A check-in not yet delivered is not queued twice.
	eng3 := h.dial("eng-3")
	if n, err := eng3.Idle(5); err != nil || n != 1 {
		t.Fatalf("eng-3 idle = %d, %v; want 1", n, err)
	}
	if n, err := eng3.Idle(6); err != nil || n != 0 {
		t.Fatalf("eng-3 idle again before delivery = %d, %v; want 0 (skipped)", n, err)
	}
	h.waitFor("skipped fire", func(a auditLine) bool {
		return a.Event == "fire" && a.Target == "eng-3" && strings.Contains(a.Detail, "still undelivered")
	})

	// An agent without after_idle check-ins can report idle: nothing happens.
	if n, err := h.dial("eng-1").Idle(3600); err != nil || n != 0 {
		t.Fatalf("eng-1 idle = %d, %v; want 0", n, err)
	}
	fires := 0
	for _, a := range h.auditLines() {
		if a.Event == "fire" && strings.Contains(a.Detail, "after_idle") && !strings.Contains(a.Detail, "skipped") {
			fires++
			if a.Actor != Runner || !strings.Contains(a.Detail, "idle for") {
				t.Errorf("fire line %+v", a)
			}
		}
	}
	if fires != 4 {
		t.Errorf("%d after_idle fire lines in the audit log, want 4", fires)
	}

	rc := h.rawHello("eng-2")
	rc.send(map[string]any{"v": 1, "type": "idle", "for": -1})
	if f := rc.expectClosed(2 * time.Second); len(f) != 1 || f[0]["code"] != CodeBadRequest {
		t.Errorf("idle with a negative time: got %v, want bad_request and close", f)
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) {
		c.Checkins = []Checkin{
			{Agent: "eng-1", Every: time.Hour, Message: "hourly"},
			{Agent: "eng-1", AfterIdle: 5 * time.Minute, Message: "quiet?"},
		}
	})
	h.start()
	start := time.Now()
	op, eng1, eng2 := h.dial(Operator), h.dial("eng-1"), h.dial("eng-2")
	if _, _, err := eng1.Schedule(30*time.Minute, "later"); err != nil {
		t.Fatal(err)
	}
	if _, err := op.Send("eng-1", "from the operator"); err != nil {
		t.Fatal(err)
	}
	if _, err := eng2.Send("eng-1", "from eng-2"); err != nil {
		t.Fatal(err)
	}
	byID := func() map[string]AgentStats {
		t.Helper()
		list, err := op.Stats()
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]AgentStats{}
		var ids []string
		for _, s := range list {
			m[s.ID] = s
			ids = append(ids, s.ID)
		}
		if want := []string{"eng-1", "eng-2", "eng-3", Operator}; !slices.Equal(ids, want) {
			t.Errorf("stats for %v, want %v", ids, want)
		}
		return m
	}
	st := byID()
	e1 := st["eng-1"]
	if e1.Queued != 2 || e1.LastIn != nil || e1.Checkins != 1 || e1.IdleCheckins != 1 || e1.Schedules != 1 || e1.Subscribed {
		t.Errorf("eng-1 before delivery: %+v", e1)
	}
	if e1.NextCheckin == nil || e1.NextCheckin.Sub(start) < 29*time.Minute || e1.NextCheckin.Sub(start) > 31*time.Minute {
		t.Errorf("eng-1's next check-in %v, want the self-scheduled one in 30m", e1.NextCheckin)
	}
	if e2 := st["eng-2"]; e2.LastOut == nil || e2.LastOut.Before(start) || e2.Queued != 0 || e2.NextCheckin != nil {
		t.Errorf("eng-2 after sending: %+v", e2)
	}
	if st[Operator].LastOut == nil {
		t.Errorf("operator sent a message: %+v", st[Operator])
	}

	inbox := h.subscribe("eng-1")
	receive(t, inbox, 2)
	h.waitFor("2 deliveries", func(a auditLine) bool { return h.count("deliver") >= 2 })
	st = byID()
	e1 = st["eng-1"]
	if e1.Queued != 0 || e1.LastIn == nil || e1.LastIn.Before(start) || !e1.Subscribed {
		t.Errorf("eng-1 after delivery: %+v", e1)
	}

	// Only the operator may ask.
	if _, err := eng1.Stats(); err == nil {
		t.Fatal("an agent got stats")
	} else {
		wantCode(t, err, CodeForbidden)
	}
	h.waitFor("deny", func(a auditLine) bool {
		return a.Event == "deny" && a.Actor == "eng-1" && strings.Contains(a.Detail, "stats")
	})

	// The times come back from the journal after a restart (the appended
	// records the first time, the compacted ones the second).
	lastIn, lastOut := *e1.LastIn, *st["eng-2"].LastOut
	for i := range 2 {
		h.stop()
		h.start()
		op = h.dial(Operator)
		st = byID()
		if e1 := st["eng-1"]; e1.LastIn == nil || !e1.LastIn.Equal(lastIn) || e1.Schedules != 1 {
			t.Errorf("eng-1 after relay restart %d: %+v, want last_in %v", i+1, e1, lastIn)
		}
		if e2 := st["eng-2"]; e2.LastOut == nil || !e2.LastOut.Equal(lastOut) {
			t.Errorf("eng-2 after relay restart %d: %+v, want last_out %v", i+1, e2, lastOut)
		}
	}
}
