package proxy

import "net/netip"

// Verdict is what an agent's rules say about a name and port. It mirrors
// internal/egress/rules.Verdict.
type Verdict struct {
	Allowed bool
	Rule    string // the entry that decided; "" when no entry matched
	Deny    bool   // a deny entry decided
}

// Checker is one agent's egress rules, as internal/egress/rules builds them.
type Checker interface {
	// CheckName says whether host:port may be requested. host is a
	// validated, lower-case name or an IP literal.
	CheckName(host string, port int) Verdict
	// NamedAddr reports the IP or CIDR entry that names ip:port exactly.
	// Only such an entry lets the proxy dial a loopback, private,
	// link-local, CGNAT, multicast or unspecified address.
	NamedAddr(ip netip.Addr, port int) (rule string, ok bool)
}
