package relay

import (
	"fmt"
	"iter"
	"slices"

	"github.com/runner-dev/runner/internal/audit"
	"sort"
	"time"
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
// over it with s.mu held, and use each record before taking the next.
func (s *Server) snapshot() iter.Seq[record] {
	return func(yield func(record) bool) {
		if !yield(record{Op: "hdr", Next: s.nextID}) {
			return
		}
		var seen seenID // one for all: each record is written before the next
		for _, c := range s.creds {
			set := s.seen[c.id]
			for _, cid := range set.order {
				seen = seenID{From: c.id, ClientID: cid, ID: set.ids[cid]}
				if !yield(record{Op: "seen", Seen: &seen}) {
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
		yield(record{Op: "audited"}) // only committed, so audited, state is in memory
	}
}

// unaudited returns the records after the journal's last audited mark: a
// commit the relay stopped in (a kill, a crash) after writing its records
// but maybe before their audit lines were written. A journal without marks
// (an older relay's) has none.
func unaudited(recs []record) []record {
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Op == "audited" {
			return recs[i+1:]
		}
	}
	return nil
}

// reRecord audits again the decisions in recs, from a commit whose audit
// lines may be missing, before anything acts on them: at worst a decision
// is in the log twice, never not at all.
func (s *Server) reRecord(recs []record) {
	const again = "; recorded again at start: the relay stopped during its commit, before this line was known to be written"
	var evs []audit.Event
	for _, r := range recs {
		switch r.Op {
		case "msg":
			m := r.Msg
			if m.From == Runner {
				evs = append(evs, s.event("fire", Runner, m.To, fmt.Sprintf("id=%d check-in%s", m.ID, again)))
			} else {
				evs = append(evs, s.event("send", m.From, m.To, fmt.Sprintf("id=%d kind=%s %s%s", m.ID, m.Kind, digest(m.Body), again)))
			}
		case "sched":
			sc := r.Sched
			evs = append(evs, s.event("schedule", sc.To, sc.To, fmt.Sprintf("id=%d due=%s %s%s", sc.ID, sc.Due.UTC().Format(time.RFC3339), digest(sc.Body), again)))
		case "ack":
			from, to := "", ""
			for id, h := range s.history {
				if i := slices.IndexFunc(h, func(m *message) bool { return m.ID == r.ID }); i >= 0 {
					from, to = h[i].From, id
				}
			}
			evs = append(evs, s.event("deliver", from, to, fmt.Sprintf("id=%d acked%s", r.ID, again)))
		}
	}
	if len(evs) > 0 {
		s.record(evs...)
	}
}
