package relay

import (
	"fmt"
	"github.com/runner-dev/runner/internal/audit"
	"sort"
)

// audit records a decision and waits until it is on disk. If the log cannot
// be written the relay stops (commit): it must not go on deciding without a
// record (invariant 10). Call without s.mu.
func (s *Server) audit(event, actor, target, detail string) {
	s.record(s.event(event, actor, target, detail))
}

type noisyKey struct{ event, actor, target string }

// auditNoisy records events that a hostile client can cause at will (failed
// hellos, rate limiting, garbage): the first per event, actor and target each second
// is written, the rest are counted and written as one line by flushNoisy.
// That bounds the log's growth, and its fsyncs, under a flood. Call without
// s.mu.
func (s *Server) auditNoisy(event, actor, target, detail string) {
	if evs := s.noisyEvent(event, actor, target, detail); evs != nil {
		s.record(evs...)
	}
}

// noisyEvent is auditNoisy's event to record now, or nil if it is counted
// for flushNoisy instead: for an op's events.
func (s *Server) noisyEvent(event, actor, target, detail string) []audit.Event {
	k := noisyKey{event, actor, target}
	s.noisyMu.Lock()
	n, seen := s.noisy[k]
	s.noisy[k] = n + 1
	s.noisyMu.Unlock()
	if seen {
		return nil
	}
	return []audit.Event{s.event(event, actor, target, detail)}
}

func (s *Server) flushNoisy() {
	s.noisyMu.Lock()
	old := s.noisy
	s.noisy = make(map[noisyKey]int)
	s.noisyMu.Unlock()
	keys := make([]noisyKey, 0, len(old))
	for k, n := range old {
		if n > 1 {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.event != b.event {
			return a.event < b.event
		}
		if a.actor != b.actor {
			return a.actor < b.actor
		}
		return a.target < b.target
	})
	var evs []audit.Event
	for _, k := range keys {
		evs = append(evs, s.event(k.event, k.actor, k.target, fmt.Sprintf("%d more in the last second, not logged one by one", old[k]-1)))
	}
	if len(evs) > 0 {
		s.record(evs...)
	}
}
