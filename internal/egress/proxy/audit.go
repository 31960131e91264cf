package proxy

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/runner-dev/runner/internal/audit"
)

// Event is one connection's record, handed to Config.Audit: a refusal when
// it is refused, or at its end when it was allowed. Events a client can
// cause at will are folded (see fold): Count > 1 stands for that many
// connections, with their bytes and durations summed.
type Event struct {
	Time      time.Time
	Agent     string
	Kind      string // allow, deny, bad_request, limit, error
	Method    string // CONNECT, GET, ... ("" when the request was unreadable)
	Host      string // validated host name or IP literal; "" when unknown
	Port      int
	Addr      netip.Addr // the address dialled; zero when none was
	Rule      string     // the entry that decided ("" none)
	Entry     string     // refusals: the allow entry that would let it through, when one would
	Reason    string     // refusals: the one line the agent got; allowed: how it ended
	BytesUp   int64      // agent to destination
	BytesDown int64      // destination to agent
	Duration  time.Duration
	Count     int
}

// Allowed says whether the event is a connection that was let through.
func (e Event) Allowed() bool { return e.Kind == "allow" }

// Audit turns e into a line of the run's audit log (internal/audit):
// event egress_allow, egress_deny, ...; actor the agent; target host:port;
// detail "count=N method=M addr=A rule="R" entry="E" up=U down=D
// duration=T: reason", which FromAudit reads back.
func (e Event) Audit() audit.Event {
	target := ""
	if e.Host != "" {
		target = hostPort(e.Host, e.Port)
	}
	d := fmt.Sprintf("count=%d", max(e.Count, 1))
	if e.Method != "" {
		d += " method=" + quoteToken(e.Method)
	}
	if e.Addr.IsValid() {
		d += " addr=" + e.Addr.String()
	}
	if e.Rule != "" {
		d += " rule=" + strconv.Quote(e.Rule)
	}
	if e.Entry != "" {
		d += " entry=" + strconv.Quote(e.Entry)
	}
	d += fmt.Sprintf(" up=%d down=%d duration=%s", e.BytesUp, e.BytesDown, e.Duration.Round(time.Millisecond))
	if e.Reason != "" {
		d += ": " + e.Reason
	}
	return audit.Event{Time: e.Time, Event: "egress_" + e.Kind, Actor: e.Agent, Target: target, Detail: d}
}

// FromAudit reads back an event that Audit wrote, for reports such as
// `runner egress`: ok is false for any other audit line.
func FromAudit(a audit.Event) (Event, bool) {
	kind, ok := strings.CutPrefix(a.Event, "egress_")
	if !ok {
		return Event{}, false
	}
	e := Event{Time: a.Time, Agent: a.Actor, Kind: kind}
	if a.Target != "" {
		host, _, port, err := parseAuthority(a.Target, 0)
		if err != nil {
			return Event{}, false
		}
		e.Host, e.Port = host, port
	}
	rest := a.Detail
	for rest != "" && !strings.HasPrefix(rest, ": ") {
		rest = strings.TrimPrefix(rest, " ")
		key, after, ok := strings.Cut(rest, "=")
		if !ok {
			return Event{}, false
		}
		var val string
		if strings.HasPrefix(after, `"`) {
			q, err := strconv.QuotedPrefix(after)
			if err != nil {
				return Event{}, false
			}
			val, _ = strconv.Unquote(q)
			rest = after[len(q):]
		} else {
			i := strings.IndexAny(after, " :")
			if i < 0 {
				i = len(after)
			}
			// durations hold no ':', addresses may (IPv6): an addr ends at a space.
			if key == "addr" {
				if j := strings.IndexByte(after, ' '); j >= 0 {
					i = j
				} else {
					i = len(after)
				}
			}
			val, rest = after[:i], after[i:]
		}
		var err error
		switch key {
		case "count":
			e.Count, err = strconv.Atoi(val)
		case "method":
			e.Method = val
		case "addr":
			e.Addr, err = netip.ParseAddr(val)
		case "rule":
			e.Rule = val
		case "entry":
			e.Entry = val
		case "up":
			e.BytesUp, err = strconv.ParseInt(val, 10, 64)
		case "down":
			e.BytesDown, err = strconv.ParseInt(val, 10, 64)
		case "duration":
			e.Duration, err = time.ParseDuration(val)
		}
		if err != nil {
			return Event{}, false
		}
	}
	e.Reason = strings.TrimPrefix(rest, ": ")
	return e, true
}

type foldKey struct {
	agent, kind, host string
	port              int
}

// emit records e. The first event of each agent, kind and destination in
// a second goes out at once; the rest of that second are summed and go out
// as one event by flush. That bounds the audit log (and its fsyncs) under
// a flood of refused or short connections, as the relay does with noisy
// events.
func (s *Server) emit(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Count = 1
	k := foldKey{e.Agent, e.Kind, e.Host, e.Port}
	s.foldMu.Lock()
	f, seen := s.folded[k]
	if seen {
		if f == nil {
			f = &Event{}
			*f = e
			f.Count = 0
			f.BytesUp, f.BytesDown, f.Duration = 0, 0, 0
			s.folded[k] = f
		}
		f.Count++
		f.BytesUp += e.BytesUp
		f.BytesDown += e.BytesDown
		f.Duration += e.Duration
		f.Time = e.Time
	} else {
		s.folded[k] = nil
	}
	s.foldMu.Unlock()
	if !seen && s.cfg.Audit != nil {
		s.cfg.Audit(e)
	}
}

// flush writes what emit folded since the last flush, in a stable order.
func (s *Server) flush() {
	s.foldMu.Lock()
	old := s.folded
	s.folded = make(map[foldKey]*Event)
	s.foldMu.Unlock()
	var out []Event
	for _, f := range old {
		if f != nil {
			out = append(out, *f)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Agent != b.Agent {
			return a.Agent < b.Agent
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Host != b.Host {
			return a.Host < b.Host
		}
		return a.Port < b.Port
	})
	for _, e := range out {
		if s.cfg.Audit != nil {
			s.cfg.Audit(e)
		}
	}
}
