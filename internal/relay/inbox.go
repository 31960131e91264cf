package relay

import (
	"fmt"
	"slices"

	"github.com/runner-dev/runner/internal/audit"
)

func (s *Server) inbox(id string, n int) any {
	if n == 0 {
		n = inboxDefault
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.history[id]
	h = h[max(0, len(h)-n):]
	out := make([]Delivery, len(h))
	for i, m := range h {
		out[i] = m.delivery()
	}
	return okFrame{V: version, Type: "ok", Messages: out}
}

// pending answers the operator's pending request: the oldest n messages
// queued for it. Agents are refused: their queue is delivered into their
// pane, and that is what the operator watches.
func (s *Server) pending(id string, n int) any {
	if id != Operator {
		s.audit("deny", id, "", "pending is for the operator only")
		return errReply(CodeForbidden, "only the operator may read its queue with pending; agents get theirs delivered")
	}
	if n == 0 {
		n = inboxDefault
	}
	n = min(n, inboxSize)
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queues[id]
	q = q[:min(n, len(q))]
	out := make([]Delivery, len(q))
	for i, m := range q {
		out[i] = m.delivery()
	}
	return okFrame{V: version, Type: "ok", Messages: out}
}

// take answers the operator's take request: its queued messages with ids up
// to upto count as delivered, like acknowledged ones.
func (s *Server) take(id string, upto uint64) any {
	if id != Operator {
		s.audit("deny", id, "", "take is for the operator only")
		return errReply(CodeForbidden, "only the operator may take from its queue; agents acknowledge deliveries")
	}
	s.mu.Lock()
	now := s.now()
	var recs []record
	var evs []audit.Event
	for len(s.queues[id]) > 0 && s.queues[id][0].ID <= upto {
		m := s.dequeue(id, 0)
		m.Delivered = now
		s.remember(m)
		recs = append(recs, record{Op: "ack", ID: m.ID, Time: now})
		evs = append(evs, s.event("deliver", m.From, id, fmt.Sprintf("id=%d kind=%s taken by runner inbox", m.ID, m.Kind)))
	}
	if len(recs) == 0 {
		s.mu.Unlock()
		return okFrame{V: version, Type: "ok"}
	}
	s.lastIn[id] = now
	// As for acks, no sync: a lost record shows the message again.
	o := &op{recs: recs, events: evs, refused: func(error) []audit.Event {
		return append(slices.Clip(evs), s.event("journal_error", id, "", "take not journaled: the messages will show again after a restart"))
	}}
	s.submit(o)
	s.mu.Unlock()
	if err := o.wait(); err != nil && !s.alive() {
		return errReply(CodeUnavailable, "the relay is stopping (%v): retry once it is back", err)
	}
	return okFrame{V: version, Type: "ok", Taken: len(recs)}
}

// remember keeps a delivered message for inbox.
func (s *Server) remember(m *message) {
	h := append(s.history[m.To], m)
	if len(h) > inboxSize {
		h = slices.Clone(h[len(h)-inboxSize:])
	}
	s.history[m.To] = h
}
