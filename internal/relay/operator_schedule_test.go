package relay

import (
	"testing"
	"time"
)

// The operator schedules a check-in for an agent (runner schedule); an
// agent schedules only for itself; an unknown name is refused.
func TestOperatorSchedulesForAnAgent(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.start()
	inbox := h.subscribe("eng-1")
	op := h.dial(Operator)
	if _, due, err := op.ScheduleFor("eng-1", time.Second, "operator: status?"); err != nil || time.Until(due) > 2*time.Second {
		t.Fatalf("ScheduleFor: due %s, %v", due, err)
	}
	got := receive(t, inbox, 1)[0]
	if got.From != Runner || got.Kind != "checkin" || got.Body != "operator: status?" {
		t.Errorf("got %+v, want the operator's check-in", got)
	}
	h.waitFor("schedule audit", func(a auditLine) bool {
		return a.Event == "schedule" && a.Actor == Operator && a.Target == "eng-1"
	})
	if _, _, err := h.dial("eng-2").ScheduleFor("eng-1", time.Minute, "x"); err == nil {
		t.Error("an agent scheduled a check-in for another")
	} else {
		wantCode(t, err, CodeForbidden)
	}
	if _, _, err := op.ScheduleFor("nobody", time.Minute, "x"); err == nil {
		t.Error("a check-in for an unknown agent was accepted")
	} else {
		wantCode(t, err, CodeInvalid)
	}
	// An agent naming itself is its own Schedule.
	if _, _, err := h.dial("eng-2").ScheduleFor("eng-2", time.Minute, "x"); err != nil {
		t.Errorf("an agent naming itself: %v", err)
	}
}
