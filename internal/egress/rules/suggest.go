package rules

import (
	"net/netip"
	"strconv"
)

// Suggest returns the allow entry that would let an agent reach host:port,
// for the proxy's 403 body and `runner egress`: "pypi.org" for ports 443
// and 80, "registry.npmjs.org:8443", "192.0.2.7:5432", "[2001:db8::7]:8080".
// It is printable ASCII with no quote or backslash, so strconv.Quote of it
// is the HCL string to paste. ok is false when host is neither a valid name
// nor an IP literal, or port is out of range: there is nothing to suggest.
//
// When a deny entry refused the destination, allowing it does not help
// (deny wins): say so rather than suggest (Verdict.Deny).
func Suggest(host string, port int) (entry string, ok bool) {
	if port < 1 || port > 65535 {
		return "", false
	}
	t, ok := parseTarget(host)
	if !ok {
		return "", false
	}
	defaultPort := false
	for _, p := range DefaultPorts {
		defaultPort = defaultPort || p == port
	}
	switch {
	case t.name != "" && defaultPort:
		return t.name, true
	case t.name != "":
		return t.name + ":" + strconv.Itoa(port), true
	case defaultPort:
		return t.addr.String(), true
	default:
		return netip.AddrPortFrom(t.addr, uint16(port)).String(), true
	}
}
