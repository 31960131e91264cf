package relay

import (
	"slices"
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

// remember keeps a delivered message for inbox.
func (s *Server) remember(m *message) {
	h := append(s.history[m.To], m)
	if len(h) > inboxSize {
		h = slices.Clone(h[len(h)-inboxSize:])
	}
	s.history[m.To] = h
}
