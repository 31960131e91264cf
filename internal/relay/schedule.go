package relay

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/runner-dev/runner/internal/audit"
)

// idleSeconds is an after_idle time in the whole seconds the idle request
// speaks: rounded up, so a check-in never fires early.
func idleSeconds(d time.Duration) int {
	return int((d + time.Second - 1) / time.Second)
}

func (s *Server) schedule(id string, req request) any {
	after, err := time.ParseDuration(req.After)
	if err != nil || after <= 0 || after > maxScheduleAfter {
		return s.invalid(id, id, "after %q: give a positive duration up to %s, like 90s, 1.5m or 2h", req.After, maxScheduleAfter)
	}
	after = max(after, time.Second) // the floor: a check-in is for a later moment, not a loop
	if err := checkBody(req.Body, s.cfg.MaxMessage); err != nil {
		return s.invalid(id, id, "%v", err)
	}
	// An agent schedules for itself only; the operator may name an agent
	// (`runner schedule`).
	to := id
	if req.To != "" && req.To != id {
		if id != Operator {
			s.auditNoisy("deny", id, req.To, "only the operator may schedule a check-in for another identity")
			return errReply(CodeForbidden, "you may schedule check-ins for yourself only")
		}
		if req.To == Operator || !s.known(req.To) {
			return s.invalid(id, req.To, "no agent %q in this run", req.To)
		}
		to = req.To
	}
	id, requester := to, id
	s.mu.Lock()
	n := s.schedStaged[id]
	for _, sc := range s.scheds {
		if sc.To == id {
			n++
		}
	}
	// Fired but undelivered ones count too: otherwise an agent could keep
	// maxSchedules pending forever while each fired one piles up in its queue.
	if fired := s.counts(id).scheduled; n+fired >= maxSchedules {
		evs := s.noisyEvent("deny", id, id, fmt.Sprintf("too many check-ins: %d pending, %d fired and undelivered", n, fired))
		s.mu.Unlock()
		if evs != nil {
			s.record(evs...)
		}
		return errReply(CodeTooManySchedules, "%d of your check-ins are pending or undelivered, the limit: wait for some to be delivered", maxSchedules)
	}
	sc := &schedule{ID: s.nextID, To: id, Body: req.Body, Due: s.now().Add(after)}
	s.nextID++
	s.schedStaged[id]++
	detail := fmt.Sprintf("id=%d due=%s %s", sc.ID, sc.Due.UTC().Format(time.RFC3339), digest(sc.Body))
	o := &op{
		recs:   []record{{Op: "sched", Sched: sc}},
		sync:   true,
		events: []audit.Event{s.event("schedule", requester, id, detail)},
		refused: func(err error) []audit.Event {
			return []audit.Event{s.event("journal_error", requester, id, fmt.Sprintf("check-in %s not stored, refused: %v", detail, err))}
		},
		apply: func(err error) {
			if s.schedStaged[id]--; s.schedStaged[id] == 0 {
				delete(s.schedStaged, id)
			}
			if err == nil {
				s.scheds[sc.ID] = sc
			}
		},
	}
	s.submit(o)
	s.mu.Unlock()
	if err := o.wait(); err != nil {
		return errReply(CodeUnavailable, "the relay could not store the check-in (%v): retry later", err)
	}
	select {
	case s.schedWake <- struct{}{}:
	default:
	}
	due := sc.Due
	return okFrame{V: version, Type: "ok", ID: sc.ID, Due: &due}
}

// fire stages check-in m and returns the op that commits it, audited as
// fire with detail. Call with s.mu held.
func (s *Server) fire(m *message, detail string) *op {
	o := &op{
		recs:   []record{{Op: "msg", Msg: m}},
		sync:   true,
		events: []audit.Event{s.event("fire", Runner, m.To, fmt.Sprintf("id=%d %s", m.ID, detail))},
		refused: func(err error) []audit.Event {
			return []audit.Event{s.event("journal_error", Runner, m.To, fmt.Sprintf("check-in id=%d (%s) not fired: %v", m.ID, detail, err))}
		},
		apply: func(err error) { s.unstage(m, err == nil) },
	}
	s.stage(m, o)
	s.submit(o)
	return o
}

// idle answers an idle request: id's shim reports that its pane has printed
// nothing for secs seconds. It fires id's after_idle check-ins whose time
// (in whole seconds) is the greatest that is at most secs — so a report
// that crossed several times fires the longest, once — except one whose
// previous firing is still undelivered. An agent can send this itself, but
// it only ever nudges itself, at its request rate.
func (s *Server) idle(id string, secs int) any {
	s.mu.Lock()
	best := 0
	for _, c := range s.cfg.Checkins {
		if c.Agent == id && c.AfterIdle > 0 {
			if n := idleSeconds(c.AfterIdle); n <= secs && n > best {
				best = n
			}
		}
	}
	if best == 0 {
		s.mu.Unlock()
		s.auditNoisy("idle", id, "", fmt.Sprintf("idle for %ds: no after_idle check-in of %s is due", secs, id))
		return okFrame{V: version, Type: "ok"}
	}
	now := s.now()
	var ops []*op
	var skipped []audit.Event
	for i, c := range s.cfg.Checkins {
		if c.Agent != id || c.AfterIdle == 0 || idleSeconds(c.AfterIdle) != best {
			continue
		}
		if s.firedPending(id, i+1) {
			skipped = append(skipped, s.noisyEvent("fire", Runner, id, "after_idle check-in skipped: the previous one is still undelivered")...)
			continue
		}
		m := &message{ID: s.nextID, From: Runner, To: id, Kind: "checkin", Body: c.Message, Time: now, Decl: i + 1}
		ops = append(ops, s.fire(m, fmt.Sprintf("after_idle %s (idle for %ds)", c.AfterIdle, secs)))
	}
	s.mu.Unlock()
	if skipped != nil {
		s.record(skipped...)
	}
	fired := 0
	var failed error
	for _, o := range ops {
		if err := o.wait(); err != nil {
			failed = err
		} else {
			fired++
		}
	}
	if failed != nil {
		return errReply(CodeUnavailable, "the relay could not store the check-in (%v): retry later", failed)
	}
	return okFrame{V: version, Type: "ok", Fired: fired}
}

// runScheduler fires check-ins when they are due. It wakes at least once a
// second, so a clock that jumps (suspend, NTP, a test clock) is noticed.
func (s *Server) runScheduler(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.schedWake:
		}
		now := s.now()
		wait := time.Second
		if next := s.fireDue(now); !next.IsZero() {
			wait = min(wait, max(next.Sub(now), 0))
		}
		t.Reset(wait)
	}
}

// fireDue fires every check-in due at now and returns when the next one is
// due (zero if none).
func (s *Server) fireDue(now time.Time) time.Time {
	s.mu.Lock()
	var next time.Time
	earliest := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	var ops []*op
	var skipped []audit.Event
	for i, c := range s.cfg.Checkins {
		if c.Every == 0 {
			continue // after_idle: fired by idle requests
		}
		if now.Before(s.declNext[i]) {
			earliest(s.declNext[i])
			continue
		}
		s.declNext[i] = s.declNext[i].Add(c.Every)
		if !s.declNext[i].After(now) {
			s.declNext[i] = now.Add(c.Every) // fell behind: do not fire a burst
		}
		earliest(s.declNext[i])
		// An agent that has not taken the last check-in needs no second one.
		if s.firedPending(c.Agent, i+1) {
			skipped = append(skipped, s.noisyEvent("fire", Runner, c.Agent, "declared check-in skipped: the previous one is still undelivered")...)
			continue
		}
		m := &message{ID: s.nextID, From: Runner, To: c.Agent, Kind: "checkin", Body: c.Message, Time: now, Decl: i + 1}
		ops = append(ops, s.fire(m, fmt.Sprintf("declared every %s", c.Every)))
	}
	var due []*schedule
	for _, sc := range s.scheds {
		if now.Before(sc.Due) {
			earliest(sc.Due)
		} else {
			due = append(due, sc)
		}
	}
	sort.Slice(due, func(i, j int) bool {
		return due[i].Due.Before(due[j].Due) || due[i].Due.Equal(due[j].Due) && due[i].ID < due[j].ID
	})
	for _, sc := range due {
		m := &message{ID: s.nextID, From: Runner, To: sc.To, Kind: "checkin", Body: sc.Body, Time: now, Sched: sc.ID}
		ops = append(ops, s.fire(m, fmt.Sprintf("scheduled check-in %d", sc.ID)))
	}
	s.mu.Unlock()
	if skipped != nil {
		s.record(skipped...)
	}
	// Waiting keeps the next pass from firing these again: a fired
	// schedule leaves s.scheds when its message is stored. One that could
	// not be stored stays, and is tried again within a second.
	for _, o := range ops {
		o.wait()
	}
	return next
}
