package relay

import (
	"slices"

	"github.com/runner-dev/runner/internal/audit"
	"sort"
)

// maybeCompact rewrites the journal once it has grown well past the state it
// holds, and returns what to audit if that failed. The committer calls it
// with s.mu held, after a commit was applied, so the snapshot holds
// everything appended so far (staged messages are not in it: their records
// are not written yet).
func (s *Server) maybeCompact() []audit.Event {
	if s.j.size < s.compactAt || s.j.size < 2*s.j.base {
		return nil
	}
	if err := s.j.rewrite(s.snapshot()); err != nil {
		if s.j.broken != nil {
			s.kill(s.j.broken)
		}
		return s.noisyEvent("journal_error", "", "", err.Error())
	}
	return nil
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

// snapshot is the current state as journal records, for compaction. Call
// with s.mu held.
func (s *Server) snapshot() []record {
	recs := []record{{Op: "hdr", Next: s.nextID}}
	for _, c := range s.creds {
		set := s.seen[c.id]
		for _, cid := range set.order {
			recs = append(recs, record{Op: "seen", Seen: &seenID{From: c.id, ClientID: cid, ID: set.ids[cid]}})
		}
	}
	for _, c := range s.creds {
		for _, m := range s.history[c.id] {
			recs = append(recs, record{Op: "hist", Msg: m})
		}
	}
	scheds := make([]*schedule, 0, len(s.scheds))
	for _, sc := range s.scheds {
		scheds = append(scheds, sc)
	}
	sort.Slice(scheds, func(i, j int) bool { return scheds[i].ID < scheds[j].ID })
	for _, sc := range scheds {
		recs = append(recs, record{Op: "sched", Sched: sc})
	}
	for _, c := range s.creds {
		for _, m := range s.queues[c.id] {
			recs = append(recs, record{Op: "msg", Msg: m})
		}
	}
	return recs
}
