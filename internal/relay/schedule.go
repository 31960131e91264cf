package relay

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"
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
	defer s.mu.Unlock()
	n := 0
	for _, sc := range s.scheds {
		if sc.To == id {
			n++
		}
	}
	// Fired but undelivered ones count too: otherwise an agent could keep
	// maxSchedules pending forever while each fired one piles up in its queue.
	if fired := s.counts(id).scheduled; n+fired >= maxSchedules {
		s.auditNoisy("deny", id, id, fmt.Sprintf("too many check-ins: %d pending, %d fired and undelivered", n, fired))
		return errReply(CodeTooManySchedules, "%d of your check-ins are pending or undelivered, the limit: wait for some to be delivered", maxSchedules)
	}
	sc := &schedule{ID: s.nextID, To: id, Body: req.Body, Due: s.now().Add(after)}
	if err := s.journal(true, record{Op: "sched", Sched: sc}); err != nil {
		return errReply(CodeUnavailable, "the relay could not store the check-in (%v): retry later", err)
	}
	s.nextID++
	s.scheds[sc.ID] = sc
	s.maybeCompact()
	s.audit("schedule", requester, id, fmt.Sprintf("id=%d due=%s %s", sc.ID, sc.Due.UTC().Format(time.RFC3339), digest(sc.Body)))
	select {
	case s.schedWake <- struct{}{}:
	default:
	}
	due := sc.Due
	return okFrame{V: version, Type: "ok", ID: sc.ID, Due: &due}
}

// idle answers an idle request: id's shim reports that its pane has printed
// nothing for secs seconds. It fires id's after_idle check-ins whose time
// (in whole seconds) is the greatest that is at most secs — so a report
// that crossed several times fires the longest, once — except one whose
// previous firing is still undelivered. An agent can send this itself, but
// it only ever nudges itself, at its request rate.
func (s *Server) idle(id string, secs int) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	best := 0
	for _, c := range s.cfg.Checkins {
		if c.Agent == id && c.AfterIdle > 0 {
			if n := idleSeconds(c.AfterIdle); n <= secs && n > best {
				best = n
			}
		}
	}
	if best == 0 {
		s.auditNoisy("idle", id, "", fmt.Sprintf("idle for %ds: no after_idle check-in of %s is due", secs, id))
		return okFrame{V: version, Type: "ok"}
	}
	now, fired := s.now(), 0
	for i, c := range s.cfg.Checkins {
		if c.Agent != id || c.AfterIdle == 0 || idleSeconds(c.AfterIdle) != best {
			continue
		}
		if slices.ContainsFunc(s.queues[id], func(m *message) bool { return m.Decl == i+1 }) {
			s.auditNoisy("fire", Runner, id, "after_idle check-in skipped: the previous one is still undelivered")
			continue
		}
		m := &message{ID: s.nextID, From: Runner, To: id, Kind: "checkin", Body: c.Message, Time: now, Decl: i + 1}
		if err := s.journal(true, record{Op: "msg", Msg: m}); err != nil {
			s.auditNoisy("journal_error", Runner, id, "after_idle check-in not fired: "+err.Error())
			return errReply(CodeUnavailable, "the relay could not store the check-in (%v): retry later", err)
		}
		s.enqueue(m)
		s.audit("fire", Runner, id, fmt.Sprintf("id=%d after_idle %s (idle for %ds)", m.ID, c.AfterIdle, secs))
		fired++
	}
	s.maybeCompact()
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
	defer s.mu.Unlock()
	var next time.Time
	earliest := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
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
		if slices.ContainsFunc(s.queues[c.Agent], func(m *message) bool { return m.Decl == i+1 }) {
			s.auditNoisy("fire", Runner, c.Agent, "declared check-in skipped: the previous one is still undelivered")
			continue
		}
		m := &message{ID: s.nextID, From: Runner, To: c.Agent, Kind: "checkin", Body: c.Message, Time: now, Decl: i + 1}
		if err := s.journal(true, record{Op: "msg", Msg: m}); err != nil {
			s.auditNoisy("journal_error", Runner, c.Agent, "declared check-in not fired: "+err.Error())
			continue
		}
		s.enqueue(m)
		s.audit("fire", Runner, c.Agent, fmt.Sprintf("id=%d declared every %s", m.ID, c.Every))
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
		if err := s.journal(true, record{Op: "msg", Msg: m}); err != nil {
			s.auditNoisy("journal_error", Runner, sc.To, "scheduled check-in not fired yet: "+err.Error())
			earliest(now.Add(time.Second))
			continue
		}
		s.enqueue(m)
		s.audit("fire", Runner, sc.To, fmt.Sprintf("id=%d scheduled check-in %d", m.ID, sc.ID))
	}
	s.maybeCompact()
	return next
}
