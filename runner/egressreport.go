package runner

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/runner-dev/runner/internal/audit"
	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/egress/proxy"
	"github.com/runner-dev/runner/internal/egress/rules"
	"github.com/runner-dev/runner/internal/termsafe"
)

// `runner egress FILE [AGENT]` and the egress figures of `runner status`
// come from the run's audit log, where the proxy records every connection
// (folded under floods): the log outlives the proxy and any restart of it,
// and it is what an operator would audit anyway.

// EgressDest is one destination an agent asked for.
type EgressDest struct {
	Host      string `json:"host"`
	Port      int    `json:"port"`
	Allowed   int64  `json:"allowed"`
	Denied    int64  `json:"denied"`
	BytesUp   int64  `json:"bytes_up"`   // agent to destination
	BytesDown int64  `json:"bytes_down"` // destination to agent
	// Reason is the last refusal the agent got for it.
	Reason string `json:"reason,omitempty"`
	// Entry is the allow entry that would let it through; Line the line
	// to paste into the agents file with it (see Where); Note says why
	// there is none, or what to mind.
	Entry string `json:"entry,omitempty"`
	Line  string `json:"line,omitempty"`
	Where string `json:"where,omitempty"`
	Note  string `json:"note,omitempty"`
}

// EgressAgent is one agent's egress.
type EgressAgent struct {
	Agent string `json:"agent"`
	// Source is where its rules come from: "egress" (its block),
	// "egress_default", "none" or "bridge".
	Source       string       `json:"source"`
	Rules        int          `json:"rules"` // entries, allow and deny
	Allowed      int64        `json:"allowed"`
	Denied       int64        `json:"denied"`
	Errors       int64        `json:"errors"` // malformed requests, limits, failed dials
	BytesUp      int64        `json:"bytes_up"`
	BytesDown    int64        `json:"bytes_down"`
	Destinations []EgressDest `json:"destinations"`
}

// EgressReport is what the run's agents reached and were refused.
type EgressReport struct {
	Run    string        `json:"run"`
	Agents []EgressAgent `json:"agents"`
}

// EgressReport reads the run's audit log: per agent of cfg (only agent,
// if not ""), the destinations allowed and denied with counts and bytes,
// and for each denied one the line that would allow it under the rules
// cfg has now. A run never applied has an empty report.
func (r *Runner) EgressReport(cfg *config.Config, agent string) (EgressReport, error) {
	rep := EgressReport{Run: cfg.Run.Name}
	st, err := r.runState(cfg.Run.Name)
	if err != nil {
		return rep, err
	}
	byAgent := map[string]*EgressAgent{}
	dests := map[string]map[string]*EgressDest{}
	addrs := map[*EgressDest]netip.Addr{} // the last refused address
	for _, a := range cfg.Agents {
		if agent != "" && a.Name != agent {
			continue
		}
		ea := &EgressAgent{Agent: a.Name, Source: egressSource(a)}
		if a.Egress != nil {
			ea.Rules = a.Egress.Rules.Len()
		}
		byAgent[a.Name], dests[a.Name] = ea, map[string]*EgressDest{}
	}
	err = audit.Read(st.Audit(), func(ae audit.Event) error {
		e, ok := proxy.FromAudit(ae)
		ea := byAgent[e.Agent]
		if !ok || ea == nil {
			return nil
		}
		n := int64(max(e.Count, 1))
		switch e.Kind {
		case "allow":
			ea.Allowed += n
		case "deny":
			ea.Denied += n
		default:
			ea.Errors += n
		}
		ea.BytesUp += e.BytesUp
		ea.BytesDown += e.BytesDown
		if e.Host == "" || e.Kind != "allow" && e.Kind != "deny" {
			return nil
		}
		key := e.Host + " " + strconv.Itoa(e.Port)
		d := dests[e.Agent][key]
		if d == nil {
			d = &EgressDest{Host: e.Host, Port: e.Port}
			dests[e.Agent][key] = d
		}
		d.BytesUp += e.BytesUp
		d.BytesDown += e.BytesDown
		if e.Kind == "allow" {
			d.Allowed += n
		} else {
			d.Denied += n
			d.Reason = e.Reason
			addrs[d] = e.Addr
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return rep, err
	}
	for _, a := range cfg.Agents {
		ea := byAgent[a.Name]
		if ea == nil {
			continue
		}
		for _, d := range dests[a.Name] {
			if d.Denied > 0 {
				fixFor(a, d, addrs[d])
			}
			ea.Destinations = append(ea.Destinations, *d)
		}
		sort.Slice(ea.Destinations, func(i, j int) bool {
			x, y := ea.Destinations[i], ea.Destinations[j]
			if x.Host != y.Host {
				return x.Host < y.Host
			}
			return x.Port < y.Port
		})
		rep.Agents = append(rep.Agents, *ea)
	}
	plainStrings(reflect.ValueOf(&rep).Elem())
	return rep, nil
}

func egressSource(a config.Agent) string {
	switch {
	case a.Network == "bridge":
		return "bridge"
	case a.Egress == nil:
		return "none"
	case a.Egress.Default:
		return "egress_default"
	}
	return "egress"
}

// fixFor fills in what would let agent a reach d, under a's rules now.
func fixFor(a config.Agent, d *EgressDest, addr netip.Addr) {
	var v rules.Verdict
	if a.Egress != nil {
		v = a.Egress.Rules.CheckName(d.Host, d.Port)
	}
	switch {
	case a.Network == "bridge":
		d.Note = `network = "bridge" now: no proxy, every address`
	case v.Deny:
		d.Note = fmt.Sprintf("deny entry %q decides (deny wins over allow): remove it from deny to allow this", v.Rule)
	case v.Allowed && addr.IsValid() && deniedAddr(a, addr, d.Port) != "":
		d.Note = fmt.Sprintf("the name is allowed but it resolved to %s, which deny entry %q covers: remove it from deny to allow this", addr, deniedAddr(a, addr, d.Port))
	case v.Allowed && addr.IsValid() && proxy.Restricted(addr) != "":
		// The name is allowed; the address it resolved to is one the
		// proxy refuses unless an IP entry names it.
		d.Entry, _ = rules.Suggest(addr.String(), d.Port)
		d.Note = fmt.Sprintf("the name is allowed (entry %q) but it resolved to %s, %s, which only an IP entry reaches: add one only if the agent is meant to reach that address", v.Rule, addr, proxy.Restricted(addr))
	case v.Allowed:
		d.Note = fmt.Sprintf("the rules allow it now (entry %q); it was refused for another reason (see reason)", v.Rule)
	default:
		d.Entry, _ = rules.Suggest(d.Host, d.Port)
	}
	if d.Entry == "" {
		return
	}
	q := strconv.Quote(d.Entry)
	switch {
	case a.Egress == nil:
		d.Where = fmt.Sprintf("agent %q (it has no egress yet)", a.Name)
		d.Line = "egress { allow = [" + q + "] }"
	case a.Egress.Default:
		d.Where = fmt.Sprintf("the run block's egress_default (or an egress block of agent %q's own)", a.Name)
		d.Line = "egress_default = " + hclList(append(append([]string(nil), a.Egress.Allow...), d.Entry))
	default:
		d.Where = fmt.Sprintf("agent %q's egress block", a.Name)
		d.Line = "allow = " + hclList(append(append([]string(nil), a.Egress.Allow...), d.Entry))
	}
}

func deniedAddr(a config.Agent, addr netip.Addr, port int) string {
	rule, _ := a.Egress.Rules.DeniedAddr(addr, port)
	return rule
}

// hclList is a list of strings as the agents file writes it.
func hclList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = strconv.Quote(termsafe.Line(x))
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// EgressLine is the status line of one agent: "3 rules, 12 allowed, 2
// denied", or "" when it has no egress.
func (a EgressAgent) Line() string {
	switch a.Source {
	case "none":
		return ""
	case "bridge":
		return `network = "bridge" (no proxy)`
	}
	rules := "rules"
	if a.Rules == 1 {
		rules = "rule"
	}
	return fmt.Sprintf("%d %s, %d allowed, %d denied", a.Rules, rules, a.Allowed, a.Denied)
}
