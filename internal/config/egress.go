package config

import (
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/runner-dev/runner/internal/egress/rules"
)

// Egress is an agent's egress allow-list: the destinations the run's proxy
// lets it reach. Nil in Agent.Egress means no egress at all.
type Egress struct {
	Allow []string // as written, in file order
	Deny  []string // as written; deny wins over allow
	// Default says the lists are the run's egress_default: the agent has no
	// egress block of its own.
	Default bool
	// Rules is Allow and Deny compiled; what the proxy and `egress check` ask.
	Rules *rules.Rules
	// DeclRange is the egress block's header, or egress_default's
	// expression when Default.
	DeclRange hcl.Range
}

// Entries is the lists as the run's egress rules file stores them.
func (e *Egress) Entries() rules.Entries {
	return rules.Entries{Allow: e.Allow, Deny: e.Deny}
}

var egressSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "allow", Required: true},
		{Name: "deny"},
	},
}

// readEgressBlock reads an agent block's egress blocks: at most one.
func (d *decoder) readEgressBlock(blk *hcl.Block, ab *agentBlock) {
	if len(ab.egress) > 0 {
		d.errorf(blk.DefRange, "Duplicate egress block",
			"This agent already has an egress block at %s. Put every allow and deny entry in one block.", at(ab.egress[0].block.DefRange))
		return
	}
	c, diags := blk.Body.Content(egressSchema)
	d.diags = append(d.diags, diags...)
	ab.egress = append(ab.egress, egressBlock{block: blk, content: c})
}

// egressBlock is an agent's egress block whose schema has been checked.
type egressBlock struct {
	block   *hcl.Block
	content *hcl.BodyContent
}

const entryForms = `Entries are "host" (ports 443 and 80), "host:port", "*.domain" (names below domain), an IP address or a CIDR, each optionally with :port; e.g. "api.anthropic.com", "registry.npmjs.org:8443", "10.1.2.0/24:5432".`

// egressEntries reads one list of entries and reports each bad one at its
// element. ok is false when the list is absent, null or has a bad entry.
func (d *decoder) egressEntries(s scope, attr *hcl.Attribute, required bool) ([]string, bool) {
	list, ok := d.strings(s, attr, required)
	if !ok {
		return nil, false
	}
	for i, entry := range list {
		if _, err := rules.Parse(entry); err != nil {
			d.fail(s, elemExpr(attr, i), "Invalid egress entry", "%s", period(sentence(err.Error())))
			ok = false
		}
	}
	return list, ok
}

// egressDefault reads the run's egress_default.
func (d *decoder) egressDefault(s scope, attr *hcl.Attribute) []string {
	list, ok := d.egressEntries(s, attr, false)
	if !ok {
		return nil
	}
	if len(list) == 0 {
		d.fail(s, attr.Expr, "Empty egress_default",
			"egress_default = [] allows nothing, which is what an agent has without it. List the destinations every agent needs, or remove the attribute. %s", entryForms)
		return nil
	}
	r, _ := rules.Compile(list, nil)
	d.defaultEgress = &Egress{Allow: list, Default: true, Rules: r, DeclRange: attr.Expr.Range()}
	return list
}

// egress evaluates an agent instance's egress: its own block, else the
// run's egress_default, else none (nil). An agent on network "bridge" takes
// no default: it reaches the network directly, not through the proxy.
func (d *decoder) egress(s scope, ab agentBlock, network string, networkAttr *hcl.Attribute) *Egress {
	if len(ab.egress) == 0 {
		if d.defaultEgress == nil || network == "bridge" {
			return nil
		}
		e := *d.defaultEgress
		return &e
	}
	eb := ab.egress[0]
	if network == "bridge" && networkAttr != nil {
		d.errorf(eb.block.DefRange, "Egress with network \"bridge\"",
			`This agent sets network = "bridge" at %s, which gives its container the engine's NAT: it could reach any address directly, so an allow-list would not bind it. Egress is enforced only with network "none" (the default), through the run's proxy. Remove the network attribute to use the allow-list, or remove the egress block to keep bridge.`,
			at(networkAttr.Range))
		return nil
	}
	allowAttr := eb.content.Attributes["allow"]
	allow, okAllow := d.egressEntries(s, allowAttr, true)
	// A bad deny entry is reported and fails the agent, like any error.
	deny, _ := d.egressEntries(s, eb.content.Attributes["deny"], false)
	if okAllow && len(allow) == 0 {
		if d.defaultEgress == nil {
			d.fail(s, allowAttr.Expr, "Empty egress allow list",
				"allow = [] allows nothing, which is what an agent without an egress block has. List the destinations the agent needs, or remove the egress block. %s", entryForms)
		}
		// With egress_default, allow = [] is how an agent opts out of it.
		return nil
	}
	if !okAllow {
		return nil
	}
	r, err := rules.Compile(allow, deny)
	if err != nil { // Parse accepted every entry above
		d.errorf(eb.block.DefRange, "Invalid egress block", "%s.", sentence(err.Error()))
		return nil
	}
	return &Egress{Allow: allow, Deny: deny, Rules: r, DeclRange: eb.block.DefRange}
}

// period ends a sentence that does not end in punctuation yet.
func period(s string) string {
	if strings.HasSuffix(s, ".") || strings.HasSuffix(s, "?") {
		return s
	}
	return s + "."
}
