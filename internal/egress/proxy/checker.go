package proxy

import (
	"net/netip"

	"github.com/runner-dev/runner/internal/egress/rules"
)

// The proxy asks an agent's rules (internal/egress/rules) about each
// destination: CheckName on the requested host:port before resolving,
// NamedAddr on each restricted address it would dial, and, when the rules
// implement rules.AddrDenier, DeniedAddr on every address it resolved.
type (
	Verdict = rules.Verdict
	Checker = rules.Checker
)

// deniedAddr reports the deny entry covering ip:port, if the rules have
// address denials.
func deniedAddr(c Checker, ip netip.Addr, port int) (string, bool) {
	if d, ok := c.(rules.AddrDenier); ok {
		return d.DeniedAddr(ip, port)
	}
	return "", false
}
