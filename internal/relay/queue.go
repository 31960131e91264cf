package relay

import "fmt"

// A recipient's queue is shared out so that no sender can crowd out the
// others (one peer sending at its full rate used to get 9 of 10 operator
// messages refused):
//
//   - a quarter of QueueLimit is the operator's alone; the operator may also
//     use whatever the agents leave free, up to QueueLimit in all;
//   - the agents that may reach a recipient share the rest equally: each may
//     hold at most (QueueLimit - the operator's quarter) / their number;
//   - check-ins have bounds of their own beside these: at most one
//     undelivered copy of each declared check-in, and a recipient's
//     self-scheduled check-ins, pending and fired-but-undelivered together,
//     at most maxSchedules.
//
// So a queue never holds more than QueueLimit + maxSchedules + the number of
// its declared check-ins.

// queueCount is what one recipient's queue holds, by sender.
type queueCount struct {
	operator  int            // from the operator
	agents    int            // from agents, in all
	checkins  int            // from runner
	scheduled int            // from runner, self-scheduled (Sched set)
	from      map[string]int // per agent sender
}

// operatorReserve is the part of a queue only the operator may fill.
func (s *Server) operatorReserve() int { return s.cfg.QueueLimit / 4 }

// share is how many undelivered messages one agent may have in to's queue.
func (s *Server) share(to string) int {
	return max(1, (s.cfg.QueueLimit-s.operatorReserve())/max(1, s.senders[to]))
}

func (s *Server) counts(to string) *queueCount {
	c := s.qcount[to]
	if c == nil {
		c = &queueCount{from: make(map[string]int)}
		s.qcount[to] = c
	}
	return c
}

// count adds (delta 1) or removes (-1) m from its recipient's counts. Call
// with s.mu held.
func (s *Server) count(m *message, delta int) {
	c := s.counts(m.To)
	switch m.From {
	case Operator:
		c.operator += delta
	case Runner:
		c.checkins += delta
		if m.Sched != 0 {
			c.scheduled += delta
		}
	default:
		c.agents += delta
		c.from[m.From] += delta
		if c.from[m.From] == 0 {
			delete(c.from, m.From)
		}
	}
}

// admit says why from may not queue another message for to, or "" if it
// may. Call with s.mu held.
func (s *Server) admit(from, to string) string {
	c := s.counts(to)
	limit, reserve := s.cfg.QueueLimit, s.operatorReserve()
	if from == Operator {
		if c.operator+c.agents >= limit {
			return fmt.Sprintf("%s has %d undelivered messages, the limit: retry later", to, limit)
		}
		return ""
	}
	if share := s.share(to); c.from[from] >= share {
		return fmt.Sprintf("%s holds %d undelivered messages from %s, its share of that queue (%d, shared by the %d agents that may send to it, with %d kept for the operator): retry later",
			to, c.from[from], from, limit, s.senders[to], reserve)
	}
	if c.agents >= limit-reserve {
		return fmt.Sprintf("%s has %d undelivered messages from agents, all they may hold (%d kept for the operator): retry later", to, c.agents, reserve)
	}
	return ""
}

// dequeue removes the i-th message of to's queue and returns it. Call with
// s.mu held.
func (s *Server) dequeue(to string, i int) *message {
	q := s.queues[to]
	m := q[i]
	s.count(m, -1)
	if len(q) == 1 {
		delete(s.queues, to)
	} else if i == 0 {
		s.queues[to] = q[1:]
	} else {
		s.queues[to] = append(q[:i:i], q[i+1:]...)
	}
	return m
}
