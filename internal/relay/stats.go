package relay

import (
	"time"
)

// stats answers the operator's stats request: per identity, its queue,
// last traffic and check-ins. Agents are refused: it would tell them about
// each other.
func (s *Server) stats(id string) any {
	if id != Operator {
		s.audit("deny", id, "", "stats is for the operator only")
		return errReply(CodeForbidden, "only the operator may ask for stats")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]AgentStats, 0, len(s.creds))
	for _, c := range s.creds {
		st := AgentStats{ID: c.id, Queued: len(s.queues[c.id]), Subscribed: s.subs[c.id] != nil}
		st.LastIn, st.LastOut = timePtr(s.lastIn[c.id]), timePtr(s.lastOut[c.id])
		var next time.Time
		earliest := func(t time.Time) {
			if !t.IsZero() && (next.IsZero() || t.Before(next)) {
				next = t
			}
		}
		for i, ci := range s.cfg.Checkins {
			switch {
			case ci.Agent != c.id:
			case ci.AfterIdle > 0:
				st.IdleCheckins++
			default:
				st.Checkins++
				earliest(s.declNext[i])
			}
		}
		for _, sc := range s.scheds {
			if sc.To == c.id {
				st.Schedules++
				earliest(sc.Due)
			}
		}
		st.NextCheckin = timePtr(next)
		out = append(out, st)
	}
	return okFrame{V: version, Type: "ok", Stats: out}
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// later sets m[k] to t if t is later than what it holds.
func later(m map[string]time.Time, k string, t time.Time) {
	if t.After(m[k]) {
		m[k] = t
	}
}
