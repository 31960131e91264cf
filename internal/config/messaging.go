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
		{Name: "every", Required: true},
		{Name: "message", Required: true},
	},
}

// checkinBlock is a checkin block whose schema has been checked.
type checkinBlock struct {
	block   *hcl.Block
	content *hcl.BodyContent
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

// checkins reads the checkin blocks of one agent instance.
func (d *decoder) checkins(s scope, ab agentBlock) []Checkin {
	var out []Checkin
	for _, cb := range ab.checkins {
		msgAttr := cb.content.Attributes["message"]
		every, everyOK := d.every(s, cb.content.Attributes["every"])
		msg, msgOK := d.str(s, msgAttr, true)
		if msgOK {
			if summary, detail := checkText("check-in message", emptyCheckin, msg); summary != "" {
				d.fail(s, msgAttr.Expr, summary, "%s", detail)
				msgOK = false
			}
		}
		if everyOK && msgOK {
			out = append(out, Checkin{Every: every, Message: msg, DeclRange: cb.block.DefRange})
		}
	}
	return out
}

// every reads a check-in interval: a Go duration from MinCheckinEvery to
// MaxCheckinEvery.
func (d *decoder) every(s scope, attr *hcl.Attribute) (time.Duration, bool) {
	str, ok := d.str(s, attr, true)
	if !ok {
		return 0, false
	}
	v, err := time.ParseDuration(str)
	switch {
	case err != nil:
		d.fail(s, attr.Expr, "Invalid check-in interval",
			`every must be a duration with a unit, such as "30m", "90s", "1.5h" or "1h30m"; got %q.`, str)
	case v < MinCheckinEvery:
		d.fail(s, attr.Expr, "Check-in interval too short",
			`every must be at least %s; got %q. Each check-in is typed into the agent's terminal, and more often would flood it.`, MinCheckinEvery, str)
	case v > MaxCheckinEvery:
		d.fail(s, attr.Expr, "Check-in interval too long",
			`every must be at most 168h (7 days); got %q.`, str)
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
