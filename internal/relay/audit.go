package relay

import (
	"fmt"
	"github.com/runner-dev/runner/internal/audit"
	"sort"
)

// audit records a decision. If the log cannot be written the relay stops:
// it must not go on deciding without a record (invariant 10).
func (s *Server) audit(event, actor, target, detail string) {
	err := s.cfg.Audit.Append(audit.Event{Time: s.now(), Event: event, Actor: actor, Target: target, Detail: detail})
	if err != nil {
		s.kill(fmt.Errorf("relay stopped: %w; it cannot run without recording its decisions: fix the audit log, then restart", err))
	}
}

type noisyKey struct{ event, actor, target string }

// auditNoisy records events that a hostile client can cause at will (failed
// hellos, rate limiting, garbage): the first per event, actor and target each second
// is written, the rest are counted and written as one line by flushNoisy.
// That bounds the log's growth, and its fsyncs, under a flood.
func (s *Server) auditNoisy(event, actor, target, detail string) {
	k := noisyKey{event, actor, target}
	s.noisyMu.Lock()
	n, seen := s.noisy[k]
	s.noisy[k] = n + 1
	s.noisyMu.Unlock()
	if !seen {
		s.audit(event, actor, target, detail)
	}
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
	for _, k := range keys {
		s.audit(k.event, k.actor, k.target, fmt.Sprintf("%d more in the last second, not logged one by one", old[k]-1))
	}
}
