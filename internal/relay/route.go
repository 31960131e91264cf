package relay

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"github.com/runner-dev/runner/internal/names"
	"path"
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

	s.mu.Lock()
	defer s.mu.Unlock()
	if req.ClientID != "" {
		if id, ok := s.seen[from].ids[req.ClientID]; ok {
			s.audit("send", from, to, fmt.Sprintf("duplicate client_id %s: already accepted as id=%d, nothing queued", req.ClientID, id))
			return okFrame{V: version, Type: "ok", ID: id, Duplicate: true}
		}
	}
	if why := s.admit(from, to); why != "" {
		s.auditNoisy("queue_full", from, to, fmt.Sprintf("%d undelivered: %s", len(s.queues[to]), why))
		return errReply(CodeQueueFull, "%s", why)
	}
	m := &message{ID: s.nextID, From: from, To: to, Kind: kind, Body: req.Body, Time: s.now(), ClientID: req.ClientID}
	if err := s.journal(true, record{Op: "msg", Msg: m}); err != nil {
		return errReply(CodeUnavailable, "the relay could not store the message (%v): retry later", err)
	}
	s.enqueue(m)
	s.lastOut[from] = m.Time
	s.maybeCompact()
	s.audit("send", from, to, fmt.Sprintf("id=%d kind=%s %s", m.ID, kind, digest(m.Body)))
	return okFrame{V: version, Type: "ok", ID: m.ID}
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
