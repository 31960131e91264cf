package proxy

import "net/netip"

// Address ranges the proxy never dials unless an IP or CIDR entry names the
// address: the host itself, the networks behind it and cloud metadata.
var (
	cgnat      = netip.MustParsePrefix("100.64.0.0/10")
	thisNet    = netip.MustParsePrefix("0.0.0.0/8")
	reserved4  = netip.MustParsePrefix("240.0.0.0/4") // includes 255.255.255.255
	siteLocal6 = netip.MustParsePrefix("fec0::/10")
	compat6    = netip.MustParsePrefix("::/96") // IPv4-compatible (deprecated), :: and ::1
	nat64      = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFour  = netip.MustParsePrefix("2002::/16")
)

// restricted says why the proxy must not dial a, or "" when a is an
// ordinary public address. IPv4 addresses carried inside IPv6 (mapped,
// compatible, NAT64, 6to4) are judged by the IPv4 address they carry.
func restricted(a netip.Addr) string {
	a = a.Unmap()
	if a.Is6() {
		switch {
		case nat64.Contains(a):
			b := a.As16()
			if r := restricted(netip.AddrFrom4([4]byte(b[12:16]))); r != "" {
				return r + " (through NAT64)"
			}
		case sixToFour.Contains(a):
			b := a.As16()
			if r := restricted(netip.AddrFrom4([4]byte(b[2:6]))); r != "" {
				return r + " (through 6to4)"
			}
		}
	}
	switch {
	case a.IsLoopback():
		return "a loopback address"
	case a.IsUnspecified(), thisNet.Contains(a):
		return "an unspecified address"
	case a == netip.AddrFrom4([4]byte{169, 254, 169, 254}):
		return "the cloud metadata address"
	case a.IsLinkLocalUnicast(), siteLocal6.Contains(a):
		return "a link-local address"
	case a.IsPrivate():
		return "a private address"
	case cgnat.Contains(a):
		return "a shared (CGNAT) address"
	case a.IsMulticast(), a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast():
		return "a multicast address"
	case reserved4.Contains(a):
		return "a reserved address"
	case compat6.Contains(a), nat64Local.Contains(a):
		return "an IPv4-embedding address the proxy does not dial"
	}
	return ""
}

// Restricted says why the proxy refuses to dial a unless an IP or CIDR
// entry names it ("a loopback address", ...), or "" for a public address:
// for reports that explain a refusal after the fact (`runner egress`).
func Restricted(a netip.Addr) string { return restricted(a) }
