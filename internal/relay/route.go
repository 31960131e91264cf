package relay

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"github.com/runner-dev/runner/internal/audit"
	"github.com/runner-dev/runner/internal/names"
	"path"
	"slices"
	"strings"
	"unicode/utf8"
)

func (s *Server) known(id string) bool {
	_, ok := s.cfg.Credentials[id]
	return ok
}

// mayReach reports whether the ACL lets from send to to.
func (s *Server) mayReach(from, to string) bool {
	if from == Operator {
		return true
	}
	for _, p := range s.cfg.ACL[from] {
		if ok, _ := path.Match(p, to); ok {
			return true
		}
	}
	return false
}

// checkBody says what is wrong with a message body, if anything.
func checkBody(body string, max int) error {
	switch {
	case body == "":
		return errors.New("body is empty")
	case len(body) > max:
		return fmt.Errorf("body is %d bytes, the limit is %d: shorten it, or write it to a shared file and send the path", len(body), max)
	case !utf8.ValidString(body):
		return errors.New("body is not valid UTF-8")
	case strings.IndexByte(body, 0) >= 0:
		return errors.New("body contains a NUL byte")
	}
	return nil
}

func validClientID(cid string) bool {
	if len(cid) > maxClientID {
		return false
	}
	for _, r := range cid {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._:-", r)) {
			return false
		}
	}
	return true
}

// digest describes a body for the audit log without revealing it.
func digest(body string) string {
	sum := sha256.Sum256([]byte(body))
	return fmt.Sprintf("len=%d sha256=%x", len(body), sum)
}

func (s *Server) send(from string, req request) any {
	to := req.To
	if !names.Valid(to) {
		s.audit("deny", from, to, "not a valid name")
		return errReply(CodeUnknownRecipient, "%q is not a valid agent name (see peers)", to)
	}
	// The ACL is checked before existence, so that a denied sender cannot
	// probe which names exist.
	if !s.mayReach(from, to) {
		s.audit("deny", from, to, "not allowed by the run's ACL")
		return errReply(CodeForbidden, "%s may not send to %s: the run's ACL does not allow it (see peers)", from, to)
	}
	if !s.known(to) {
		s.audit("deny", from, to, "no such identity")
		return errReply(CodeUnknownRecipient, "there is no %s in run %s (see peers)", to, s.cfg.Run)
	}
	kind := "message"
	switch req.Kind {
	case "", "message":
	case "brief":
		if from != Operator {
			s.audit("deny", from, to, "only the operator may send briefs")
			return errReply(CodeForbidden, "only the operator may send kind brief")
		}
		kind = "brief"
	default:
		return s.invalid(from, to, "kind %q: use message (or brief, operator only)", req.Kind)
	}
	if err := checkBody(req.Body, s.cfg.MaxMessage); err != nil {
		return s.invalid(from, to, "%v", err)
	}
	if !validClientID(req.ClientID) {
		return s.invalid(from, to, "client_id must be at most %d letters, digits or ._:-", maxClientID)
	}

	sum := digest(req.Body)
	s.mu.Lock()
	if req.ClientID != "" {
		id, first := s.seen[from].ids[req.ClientID], (*op)(nil)
		if id == 0 {
			if st, ok := s.stagedCID[cidKey{from, req.ClientID}]; ok {
				id, first = st.id, st.op
			}
		}
		if id != 0 {
			o := &op{after: first, events: []audit.Event{s.event("send", from, to, fmt.Sprintf("duplicate client_id %s: already accepted as id=%d, nothing queued", req.ClientID, id))}}
			o.refused = func(err error) []audit.Event {
				return []audit.Event{s.event("journal_error", from, to, fmt.Sprintf("duplicate client_id %s of id=%d, which was not stored (%v): refused", req.ClientID, id, err))}
			}
			s.submit(o)
			s.mu.Unlock()
			if err := o.wait(); err != nil {
				return errReply(CodeUnavailable, "the relay could not store the message (%v): retry later", err)
			}
			return okFrame{V: version, Type: "ok", ID: id, Duplicate: true}
		}
	}
	if why := s.admit(from, to); why != "" {
		evs := s.noisyEvent("queue_full", from, to, fmt.Sprintf("%d undelivered: %s", len(s.queues[to]), why))
		s.mu.Unlock()
		if evs != nil {
			s.record(evs...)
		}
		return errReply(CodeQueueFull, "%s", why)
	}
	m := &message{ID: s.nextID, From: from, To: to, Kind: kind, Body: req.Body, Time: s.now(), ClientID: req.ClientID}
	o := &op{
		recs:   []record{{Op: "msg", Msg: m}},
		sync:   true,
		events: []audit.Event{s.event("send", from, to, fmt.Sprintf("id=%d kind=%s %s", m.ID, kind, sum))},
		refused: func(err error) []audit.Event {
			return []audit.Event{s.event("journal_error", from, to, fmt.Sprintf("id=%d kind=%s %s not stored, refused: %v", m.ID, kind, sum, err))}
		},
		apply: func(err error) {
			if s.unstage(m, err == nil) {
				s.lastOut[from] = m.Time
			}
		},
	}
	s.stage(m, o)
	s.submit(o)
	s.mu.Unlock()
	if err := o.wait(); err != nil {
		return errReply(CodeUnavailable, "the relay could not store the message (%v): retry later", err)
	}
	return okFrame{V: version, Type: "ok", ID: m.ID}
}

// cidKey is a sender's client_id.
type cidKey struct{ from, cid string }

// staged is an accepted message on its way to disk.
type staged struct {
	id uint64
	op *op
}

// stage reserves m's place while o commits it: m counts against its
// recipient's queue (so admit sees it) and its client_id is known (so a
// repeat is a duplicate), but it is not deliverable yet. Call with s.mu
// held, and the id taken.
func (s *Server) stage(m *message, o *op) {
	s.nextID = max(s.nextID, m.ID+1)
	s.count(m, 1)
	s.staged[m.ID] = m
	if m.ClientID != "" {
		s.stagedCID[cidKey{m.From, m.ClientID}] = staged{m.ID, o}
	}
}

// unstage ends m's staging: stored, it is queued for delivery; refused, its
// place is given back. It returns stored. Call with s.mu held.
func (s *Server) unstage(m *message, stored bool) bool {
	delete(s.staged, m.ID)
	if m.ClientID != "" {
		delete(s.stagedCID, cidKey{m.From, m.ClientID})
	}
	s.count(m, -1)
	if stored {
		s.enqueue(m)
	}
	return stored
}

// firedPending reports whether declared check-in decl (1 + its index) has a
// firing for to that is queued or on its way. Call with s.mu held.
func (s *Server) firedPending(to string, decl int) bool {
	if slices.ContainsFunc(s.queues[to], func(m *message) bool { return m.Decl == decl }) {
		return true
	}
	for _, m := range s.staged {
		if m.To == to && m.Decl == decl {
			return true
		}
	}
	return false
}

// enqueue adds an accepted message to its recipient's queue. Call with s.mu
// held.
func (s *Server) enqueue(m *message) {
	s.nextID = max(s.nextID, m.ID+1)
	s.queues[m.To] = append(s.queues[m.To], m)
	s.count(m, 1)
	if m.ClientID != "" {
		if set := s.seen[m.From]; set != nil {
			set.add(m.ClientID, m.ID)
		}
	}
	delete(s.scheds, m.Sched)
	if sub := s.subs[m.To]; sub != nil {
		select {
		case sub.wake <- struct{}{}:
		default:
		}
	}
}

// seenSet is the client_ids one sender used most recently, oldest first.
type seenSet struct {
	ids   map[string]uint64
	order []string
}

func newSeenSet() *seenSet { return &seenSet{ids: make(map[string]uint64)} }

func (s *seenSet) add(cid string, id uint64) {
	if _, ok := s.ids[cid]; ok {
		return
	}
	s.ids[cid] = id
	s.order = append(s.order, cid)
	if len(s.order) > seenPerSender {
		delete(s.ids, s.order[0])
		s.order = s.order[1:]
	}
}
