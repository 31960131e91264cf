package relay

import (
	"iter"
	"slices"

	"github.com/runner-dev/runner/internal/audit"
	"sort"
)

// maybeCompact starts rewriting the journal once it has grown well past the
// state it holds, and returns whether it did (then the caller calls
// finishCompact, without s.mu) and what to audit if that failed. The
// committer calls it with s.mu held, after a commit was applied, so the
// snapshot holds everything appended so far (staged messages are not in it:
// their records are not written yet).
func (s *Server) maybeCompact() (bool, []audit.Event) {
	if s.j.size < s.compactAt || s.j.size < 2*s.j.base {
		return false, nil
	}
	if err := s.j.startRewrite(s.snapshot()); err != nil {
		return false, s.compactFailed(err)
	}
	return true, nil
}

// finishCompact syncs and renames the rewritten journal into place; only
// the committer may call it, after maybeCompact started one.
func (s *Server) finishCompact() []audit.Event {
	if err := s.j.finishRewrite(); err != nil {
		return s.compactFailed(err)
	}
	return nil
}

func (s *Server) compactFailed(err error) []audit.Event {
	if s.j.broken != nil {
		s.kill(s.j.broken)
	}
	return s.noisyEvent("journal_error", "", "", err.Error())
}

// replay rebuilds the state from journal records and returns the messages it
// had to drop because their recipient left the run.
func (s *Server) replay(recs []record) (lost []*message) {
	for _, r := range recs {
		switch r.Op {
		case "hdr":
			s.nextID = max(s.nextID, r.Next)
		case "msg":
			if !s.known(r.Msg.To) {
				lost = append(lost, r.Msg)
				s.nextID = max(s.nextID, r.Msg.ID+1)
				delete(s.scheds, r.Msg.Sched)
				continue
			}
			s.enqueue(r.Msg)
			later(s.lastOut, r.Msg.From, r.Msg.Time)
		case "ack":
			for to, q := range s.queues {
				if i := slices.IndexFunc(q, func(m *message) bool { return m.ID == r.ID }); i >= 0 {
					m := s.dequeue(to, i)
					m.Delivered = r.Time
					later(s.lastIn, to, r.Time)
					s.remember(m)
					break
				}
			}
		case "hist":
			if s.known(r.Msg.To) {
				s.remember(r.Msg)
				later(s.lastIn, r.Msg.To, r.Msg.Delivered)
			}
			later(s.lastOut, r.Msg.From, r.Msg.Time)
		case "sched":
			s.nextID = max(s.nextID, r.Sched.ID+1)
			if s.known(r.Sched.To) {
				s.scheds[r.Sched.ID] = r.Sched
			}
		case "seen":
			if set := s.seen[r.Seen.From]; set != nil {
				set.add(r.Seen.ClientID, r.Seen.ID)
			}
		}
	}
	return lost
}

// snapshot is the current state as journal records, for compaction. Range
// over it with s.mu held.
func (s *Server) snapshot() iter.Seq[record] {
	return func(yield func(record) bool) {
		if !yield(record{Op: "hdr", Next: s.nextID}) {
			return
		}
		for _, c := range s.creds {
			set := s.seen[c.id]
			for _, cid := range set.order {
				if !yield(record{Op: "seen", Seen: &seenID{From: c.id, ClientID: cid, ID: set.ids[cid]}}) {
					return
				}
			}
		}
		for _, c := range s.creds {
			for _, m := range s.history[c.id] {
				if !yield(record{Op: "hist", Msg: m}) {
					return
				}
			}
		}
		scheds := make([]*schedule, 0, len(s.scheds))
		for _, sc := range s.scheds {
			scheds = append(scheds, sc)
		}
		sort.Slice(scheds, func(i, j int) bool { return scheds[i].ID < scheds[j].ID })
		for _, sc := range scheds {
			if !yield(record{Op: "sched", Sched: sc}) {
				return
			}
		}
		for _, c := range s.creds {
			for _, m := range s.queues[c.id] {
				if !yield(record{Op: "msg", Msg: m}) {
					return
				}
			}
		}
	}
}
