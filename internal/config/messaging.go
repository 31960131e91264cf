package config

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/runner-dev/runner/internal/names"
)

var checkinSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "every"},
		{Name: "after_idle"},
		{Name: "message", Required: true},
	},
}

// checkinBlock is a checkin block whose schema has been checked.
type checkinBlock struct {
	block   *hcl.Block
	content *hcl.BodyContent
	// triggerOK: it has exactly one of every and after_idle (checked once
	// per block, not per count instance).
	triggerOK bool
}

// checkTrigger reports a checkin block without exactly one of every and
// after_idle.
func (d *decoder) checkTrigger(cb checkinBlock) bool {
	every, idle := cb.content.Attributes["every"], cb.content.Attributes["after_idle"]
	switch {
	case every != nil && idle != nil:
		d.errorf(idle.NameRange, "Conflicting check-in triggers",
			`A checkin block fires either every interval (every) or once the agent's pane has printed nothing for a while (after_idle), not both. Remove one, or write a checkin block for each.`)
		return false
	case every == nil && idle == nil:
		d.errorf(cb.block.DefRange, "Missing check-in trigger",
			`A checkin block needs every = "30m" (a recurring check-in) or after_idle = "10m" (a check-in once the agent's pane has printed nothing for that long).`)
		return false
	}
	return true
}

// reservedNames are identities the relay gives to someone other than an
// agent, with why.
var reservedNames = map[string]string{
	Operator: `"operator" is the identity of the person running the run; agents list it in send_to to message them.`,
	"runner": `"runner" is the identity check-ins are sent from, and the relay refuses it to agents.`,
}

// checkReserved reports an agent named after a reserved identity.
func (d *decoder) checkReserved(name string, rng hcl.Range) bool {
	why, ok := reservedNames[name]
	if ok {
		d.errorf(rng, "Reserved agent name", "%s Give the agent another name.", why)
	}
	return !ok
}

// sendToEntry is a valid send_to entry naming agents, kept to check once
// every agent name is known.
type sendToEntry struct {
	s       scope
	expr    hcl.Expression
	pattern string
}

// patternChars are what a send_to entry may hold: the characters of names
// and the glob characters of path.Match. No '\' (names need no escaping) and
// no '^' (negated sets would silently grow as agents are added).
const patternChars = "abcdefghijklmnopqrstuvwxyz0123456789-*?[]"

// isGlob reports whether a send_to entry is a pattern rather than a name.
func isGlob(p string) bool { return strings.ContainsAny(p, "*?[") }

// checkPattern says what is wrong with a send_to entry, or "" if nothing.
func checkPattern(p string) string {
	switch {
	case p == "":
		return "an empty entry names nobody"
	case strings.Trim(p, patternChars) != "":
		return fmt.Sprintf("%q has characters other than lowercase letters, digits, '-' and the glob characters * ? [ ]", p)
	case !isGlob(p) && !names.Valid(p):
		return fmt.Sprintf("%q is not a valid agent name (%s)", p, names.Pattern)
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Sprintf("%q is a malformed pattern: each [ needs a matching ] with at least one character between", p)
	}
	return ""
}

// sendTo reads an agent's send_to list. Whether each entry names an agent
// is checked later, by checkSendTo, once every block is expanded.
func (d *decoder) sendTo(s scope, attr *hcl.Attribute) []string {
	list, ok := d.strings(s, attr, false)
	if !ok || len(list) == 0 {
		return nil
	}
	for i, p := range list {
		expr := elemExpr(attr, i)
		if problem := checkPattern(p); problem != "" {
			d.fail(s, expr, "Invalid send_to entry",
				`%s. List agent names, "operator", or patterns over names: * matches any characters, ? one character, [a-c] one of a set; e.g. "eng-*".`, sentence(problem))
			continue
		}
		if p != Operator {
			d.patterns = append(d.patterns, sendToEntry{s, expr, p})
		}
	}
	return list
}

// maxListedAgents bounds the agent list in "matches no agent" errors.
const maxListedAgents = 20

// checkSendTo reports send_to entries that match no agent of the file: an
// entry that reaches nobody is almost certainly a typo.
func (d *decoder) checkSendTo() {
	if d.namesUnknown || len(d.patterns) == 0 {
		return
	}
	all := slices.Sorted(slices.Values(d.agentNames))
	listed := strings.Join(all[:min(len(all), maxListedAgents)], ", ")
	if len(all) > maxListedAgents {
		listed += fmt.Sprintf(" and %d more", len(all)-maxListedAgents)
	}
	for _, e := range d.patterns {
		if slices.ContainsFunc(all, func(name string) bool {
			ok, _ := path.Match(e.pattern, name)
			return ok
		}) {
			continue
		}
		if isGlob(e.pattern) {
			d.fail(e.s, e.expr, "No agent matches send_to pattern",
				`send_to pattern %q matches no agent; agents are: %s. Fix the pattern, or remove it. Patterns never match the operator: to message the operator, list "operator".`, e.pattern, listed)
		} else {
			d.fail(e.s, e.expr, "Unknown agent in send_to",
				"send_to names %q, but there is no such agent; agents are: %s. Fix the name, or remove it.", e.pattern, listed)
		}
	}
}

// checkins reads the checkin blocks of one agent instance. Each has
// exactly one trigger: every (recurring) or after_idle (when the agent's
// pane has printed nothing for that long).
func (d *decoder) checkins(s scope, ab agentBlock) []Checkin {
	var out []Checkin
	for _, cb := range ab.checkins {
		attrs := cb.content.Attributes
		msgAttr := attrs["message"]
		c := Checkin{DeclRange: cb.block.DefRange}
		triggerOK := false
		switch {
		case !cb.triggerOK:
		case attrs["every"] != nil:
			c.Every, triggerOK = d.interval(s, attrs["every"])
		default:
			c.AfterIdle, triggerOK = d.interval(s, attrs["after_idle"])
		}
		msg, msgOK := d.str(s, msgAttr, true)
		if msgOK {
			if summary, detail := checkText("check-in message", emptyCheckin, msg); summary != "" {
				d.fail(s, msgAttr.Expr, summary, "%s", detail)
				msgOK = false
			}
		}
		if triggerOK && msgOK {
			c.Message = msg
			out = append(out, c)
		}
	}
	return out
}

// interval reads a check-in's every or after_idle: a Go duration from
// MinCheckinEvery to MaxCheckinEvery.
func (d *decoder) interval(s scope, attr *hcl.Attribute) (time.Duration, bool) {
	str, ok := d.str(s, attr, true)
	if !ok {
		return 0, false
	}
	what, why := "check-in interval", "Each check-in is typed into the agent's terminal, and more often would flood it."
	if attr.Name == "after_idle" {
		what, why = "idle time", "It is how long the agent's pane must have printed nothing before the check-in is typed into it."
	}
	v, err := time.ParseDuration(str)
	switch {
	case err != nil:
		d.fail(s, attr.Expr, sentence("invalid "+what),
			`%s must be a duration with a unit, such as "30m", "90s", "1.5h" or "1h30m"; got %q.`, attr.Name, str)
	case v < MinCheckinEvery:
		d.fail(s, attr.Expr, sentence(what+" too short"),
			`%s must be at least %s; got %q. %s`, attr.Name, MinCheckinEvery, str, why)
	case v > MaxCheckinEvery:
		d.fail(s, attr.Expr, sentence(what+" too long"),
			`%s must be at most 168h (7 days); got %q.`, attr.Name, str)
	default:
		return v, true
	}
	return 0, false
}

// Details of the "empty" errors of checkText.
const (
	emptyCheckin = "message is what the agent receives at each check-in, and cannot be empty. Give it text, or remove the checkin block."
	emptyBrief   = "brief is delivered as the agent's first message, and cannot be empty. Give it text, or remove the attribute (or set it to null) for no brief."
)

// checkText checks text the relay will deliver as a message (a check-in
// message or a brief); noun is what it is, empty the detail when it is "".
// It returns a summary and a detail when the text is unusable.
func checkText(noun, empty, v string) (summary, detail string) {
	switch {
	case v == "":
		return sentence("empty " + noun), empty
	case len(v) > MaxMessage:
		return sentence(noun + " too long"), fmt.Sprintf(
			"The %s is %d bytes; the limit is %d (16 KiB), the largest message the relay delivers. Shorten it, or put the text in a file the agent can read (a mount) and point to it.", noun, len(v), MaxMessage)
	case !utf8.ValidString(v):
		return sentence(noun + " is not UTF-8"), fmt.Sprintf(
			"The %s is pasted into a terminal as text, so it must be valid UTF-8. Convert it.", noun)
	case strings.IndexByte(v, 0) >= 0:
		return "NUL byte in " + noun, fmt.Sprintf(
			"The %s contains a NUL byte, which cannot be pasted into a terminal. Remove it.", noun)
	}
	return "", ""
}

// MayMessage reports whether from may send a message to to, by from's
// send_to: a name listed literally, or a glob that matches. to must be an
// agent of c or Operator. Decisions:
//
//   - A glob never matches from itself nor Operator: send_to = ["eng-*"] in
//     a counted block lets each engineer message the others, not itself, and
//     does not reach the operator. Only a literal entry naming the agent
//     itself, or "operator", allows those.
//   - Operator may message every agent (the relay's rule), but not itself.
//   - Unknown names, on either side, may not.
func (c *Config) MayMessage(from, to string) bool {
	if from == Operator {
		return c.agent(to) != nil
	}
	a := c.agent(from)
	if a == nil || (to != Operator && c.agent(to) == nil) {
		return false
	}
	for _, p := range a.SendTo {
		if p == to {
			return true
		}
		if to == from || to == Operator {
			continue
		}
		if ok, _ := path.Match(p, to); ok {
			return true
		}
	}
	return false
}

// Peers returns, sorted, everyone agent may message by MayMessage: agent
// names, and Operator if listed. It is never nil, and is empty for an agent
// with no send_to or not in c. These exact names are what the relay's ACL
// should hold.
func (c *Config) Peers(agent string) []string {
	peers := []string{}
	for _, a := range c.Agents {
		if c.MayMessage(agent, a.Name) {
			peers = append(peers, a.Name)
		}
	}
	if c.MayMessage(agent, Operator) {
		peers = append(peers, Operator)
	}
	slices.Sort(peers)
	return peers
}

// agent returns the agent named name, or nil.
func (c *Config) agent(name string) *Agent {
	i := slices.IndexFunc(c.Agents, func(a Agent) bool { return a.Name == name })
	if i < 0 {
		return nil
	}
	return &c.Agents[i]
}
