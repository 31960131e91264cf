package proxy

import "sort"

// AgentStats is what one agent's connections did since the proxy started.
type AgentStats struct {
	Open         int         `json:"open"` // connections open now
	Allowed      int64       `json:"allowed"`
	Denied       int64       `json:"denied"`       // refused by the rules, an address check or the SNI check
	BytesUp      int64       `json:"bytes_up"`     // agent to destinations
	BytesDown    int64       `json:"bytes_down"`   // destinations to agent
	Destinations []DestStats `json:"destinations"` // by host and port; at most Limits.MaxDestinations, the rest in "(other)"
}

// DestStats is one destination of one agent.
type DestStats struct {
	Host      string `json:"host"` // "(other)" for destinations past the limit
	Port      int    `json:"port"`
	Allowed   int64  `json:"allowed"`
	Denied    int64  `json:"denied"`
	BytesUp   int64  `json:"bytes_up"`
	BytesDown int64  `json:"bytes_down"`
	Rule      string `json:"rule,omitempty"`  // the entry that decided last
	Entry     string `json:"entry,omitempty"` // refused: the allow entry that would let it through ("" when a deny entry or a check other than the rules refused it)
	Fix       string `json:"fix,omitempty"`   // refused: the line the agent was given, last time
}

type destKey struct {
	host string
	port int
}

type agentStats struct {
	allowed, denied, up, down int64
	dests                     map[destKey]*DestStats
}

// dest returns k's record, or the "(other)" record once max are kept.
// Called with the agent's lock held.
func (st *agentStats) dest(k destKey, max int) *DestStats {
	if st.dests == nil {
		st.dests = make(map[destKey]*DestStats)
	}
	if d, ok := st.dests[k]; ok {
		return d
	}
	if len(st.dests) >= max {
		k = destKey{"(other)", 0}
		if d, ok := st.dests[k]; ok {
			return d
		}
	}
	d := &DestStats{Host: k.host, Port: k.port}
	st.dests[k] = d
	return d
}

// Stats returns a copy of every agent's counters.
func (s *Server) Stats() map[string]AgentStats {
	out := make(map[string]AgentStats, len(s.agents))
	for name, ag := range s.agents {
		ag.mu.Lock()
		as := AgentStats{Open: len(ag.conns), Allowed: ag.stats.allowed, Denied: ag.stats.denied, BytesUp: ag.stats.up, BytesDown: ag.stats.down}
		for _, d := range ag.stats.dests {
			as.Destinations = append(as.Destinations, *d)
		}
		ag.mu.Unlock()
		sort.Slice(as.Destinations, func(i, j int) bool {
			a, b := as.Destinations[i], as.Destinations[j]
			if a.Host != b.Host {
				return a.Host < b.Host
			}
			return a.Port < b.Port
		})
		out[name] = as
	}
	return out
}

// count records a decision about req in ag's stats.
func (s *Server) count(ag *agent, host string, port int, allowed bool, rule, entry, fix string) {
	if host == "" {
		return
	}
	ag.mu.Lock()
	defer ag.mu.Unlock()
	d := ag.stats.dest(destKey{host, port}, s.cfg.Limits.MaxDestinations)
	if allowed {
		ag.stats.allowed++
		d.Allowed++
	} else {
		ag.stats.denied++
		d.Denied++
		d.Entry, d.Fix = entry, fix
	}
	d.Rule = rule
}

// addBytes counts n bytes of a connection to host:port.
func (s *Server) addBytes(ag *agent, host string, port int, up, down int64) {
	if up == 0 && down == 0 {
		return
	}
	ag.mu.Lock()
	defer ag.mu.Unlock()
	ag.stats.up += up
	ag.stats.down += down
	d := ag.stats.dest(destKey{host, port}, s.cfg.Limits.MaxDestinations)
	d.BytesUp += up
	d.BytesDown += down
}
