// Package rules parses and matches an agent's egress entries: the allow and
// deny lists of an `egress` block (and a run's egress_default). It is the
// contract between the config, plan, `runner egress check` and the egress
// proxy: the proxy asks a Checker, and nothing else decides.
//
// An entry is one of
//
//	host            a DNS name; ports 443 and 80
//	host:port       that port only
//	*.suffix        any name below suffix (a.suffix, a.b.suffix), not suffix itself
//	*.suffix:port
//	IP              an IPv4 or IPv6 literal (192.0.2.7, 2001:db8::7); ports 443 and 80
//	IP:port         192.0.2.7:8080, [2001:db8::7]:8080
//	CIDR            10.1.2.0/24, fd00::/8; ports 443 and 80
//	CIDR:port       10.1.2.0/24:5432, [fd00::/8]:5432
//
// In a deny list an entry without a port denies every port: a denied host is
// never reachable, whatever port some allow entry names.
//
// Names are matched lower-cased and without a trailing dot. Entries must be
// ASCII: a name with non-ASCII letters is refused with a hint to write its
// xn-- (punycode) form, because that is what clients send on the wire and
// what the proxy and audit log show, so the file says exactly what matches.
package rules

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Kind is what an entry names.
type Kind int

const (
	KindName     Kind = iota // exact DNS name
	KindWildcard             // *.suffix
	KindIP                   // one address
	KindCIDR                 // a prefix
)

// Entry is one parsed allow or deny entry.
type Entry struct {
	Raw    string       // as the file wrote it
	Kind   Kind         //
	Host   string       // KindName: the name; KindWildcard: the suffix without "*."; lower case, no trailing dot
	Prefix netip.Prefix // KindIP (a /32 or /128) and KindCIDR
	Port   int          // 1..65535, or 0: no port written
}

// DefaultPorts are the ports an entry without a port allows.
var DefaultPorts = []int{443, 80}

// maxEntry bounds an entry's length: a name is at most 253 bytes, and
// anything much longer is not an entry.
const maxEntry = 300

// Parse parses one entry. Its errors say what is wrong and what to write
// instead, in one sentence without the entry itself (callers point at it).
func Parse(s string) (Entry, error) {
	e := Entry{Raw: s}
	switch {
	case s == "":
		return e, fmt.Errorf("an entry cannot be empty; write a host name, *.domain, an IP address or a CIDR")
	case len(s) > maxEntry:
		return e, fmt.Errorf("an entry is at most %d bytes", maxEntry)
	}
	for _, r := range s {
		switch {
		case r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f':
			return e, fmt.Errorf("an entry cannot contain whitespace; write one destination per string")
		case r < 0x20 || r == 0x7f:
			return e, fmt.Errorf("an entry cannot contain control characters")
		case r > 0x7f:
			return e, fmt.Errorf("an entry must be ASCII: write an international name in its xn-- (punycode) form, which is what clients send")
		}
	}
	if strings.Contains(s, "://") {
		return e, fmt.Errorf("an entry is a destination, not a URL: write the host (and :port) without a scheme, e.g. %q", hostOfURL(s))
	}
	hostport, port, err := splitPort(s)
	if err != nil {
		return e, err
	}
	e.Port = port
	if strings.Contains(hostport, "/") {
		p, err := parsePrefix(hostport)
		if err != nil {
			return e, err
		}
		e.Kind, e.Prefix = KindCIDR, p
		if p.IsSingleIP() {
			e.Kind = KindIP
		}
		return e, nil
	}
	if strings.Contains(hostport, ":") || isIPv4ish(hostport) {
		a, err := parseAddr(hostport)
		if err != nil {
			return e, err
		}
		e.Kind, e.Prefix = KindIP, netip.PrefixFrom(a, a.BitLen())
		return e, nil
	}
	if suffix, ok := strings.CutPrefix(hostport, "*."); ok {
		h, err := normaliseName(suffix)
		if err != nil {
			return e, err
		}
		e.Kind, e.Host = KindWildcard, h
		return e, nil
	}
	if hostport == "*" {
		return e, fmt.Errorf("* alone would allow every destination; list the hosts the agent needs, or *.domain for the names below one domain")
	}
	h, err := normaliseName(hostport)
	if err != nil {
		return e, err
	}
	e.Kind, e.Host = KindName, h
	return e, nil
}

// splitPort splits an optional :port off s. IPv6 literals carry a port only
// in brackets ([::1]:80, [fd00::/8]:5432); an unbracketed one has none.
func splitPort(s string) (string, int, error) {
	if rest, ok := strings.CutPrefix(s, "["); ok {
		host, after, ok := strings.Cut(rest, "]")
		if !ok {
			return "", 0, fmt.Errorf("a [ needs its ]: write [IPv6]:port, e.g. [2001:db8::1]:443")
		}
		if !strings.Contains(host, ":") {
			return "", 0, fmt.Errorf("brackets are only for IPv6 addresses; write an IPv4 address or a name without them")
		}
		if after == "" {
			return host, 0, nil
		}
		p, ok := strings.CutPrefix(after, ":")
		if !ok {
			return "", 0, fmt.Errorf("after ] only :port may follow, e.g. [2001:db8::1]:443")
		}
		port, err := parsePort(p)
		return host, port, err
	}
	if strings.Count(s, ":") > 1 {
		// An IPv6 literal or prefix without brackets: no port.
		return s, 0, nil
	}
	host, p, ok := strings.Cut(s, ":")
	if !ok {
		return s, 0, nil
	}
	port, err := parsePort(p)
	return host, port, err
}

func parsePort(p string) (int, error) {
	if p == "" {
		return 0, fmt.Errorf("a : must be followed by a port from 1 to 65535; drop it for ports 443 and 80")
	}
	if strings.ContainsAny(p, "/?#") {
		return 0, fmt.Errorf("an entry is a destination, not a URL: drop the path after the port")
	}
	if !allDigits(p) {
		return 0, fmt.Errorf("the port %q is not a number from 1 to 65535", p)
	}
	if len(p) > 1 && p[0] == '0' {
		return 0, fmt.Errorf("write the port %q without leading zeros", p)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("the port %s is out of range: a port is from 1 to 65535", p)
	}
	return n, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	addr, bits, _ := strings.Cut(s, "/")
	if !strings.Contains(addr, ":") && !isIPv4ish(addr) {
		return netip.Prefix{}, fmt.Errorf("an entry is a destination, not a URL: drop the path (a / is only for a CIDR such as 10.1.2.0/24)")
	}
	a, err := parseAddr(addr)
	if err != nil {
		return netip.Prefix{}, err
	}
	if strings.Contains(bits, ":") {
		return netip.Prefix{}, fmt.Errorf("an IPv6 CIDR takes a port only in brackets, e.g. [fd00::/8]:5432")
	}
	n, err := strconv.Atoi(bits)
	if err != nil || !allDigits(bits) || n > a.BitLen() || (len(bits) > 1 && bits[0] == '0') {
		return netip.Prefix{}, fmt.Errorf("the prefix length %q is not a number from 0 to %d", bits, a.BitLen())
	}
	p := netip.PrefixFrom(a, n)
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("the CIDR has bits set past its prefix length: did you mean %s?", m)
	}
	if n == 0 {
		return netip.Prefix{}, fmt.Errorf("a /0 CIDR would allow every address; name the networks the agent needs")
	}
	return p, nil
}

func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return a, fmt.Errorf("%q is not an IP address (IPv4 as 192.0.2.7, IPv6 as 2001:db8::7)", s)
	}
	if a.Zone() != "" {
		return a, fmt.Errorf("an IPv6 zone (%%%s) cannot be named; the proxy dials without one", a.Zone())
	}
	return a.Unmap(), nil
}

// isIPv4ish reports whether s ends in an all-digit label, which makes it an
// IPv4 address (or a malformed one) rather than a name: resolvers take
// "127.1" and "2130706433" for addresses, so no name may look like that.
func isIPv4ish(s string) bool {
	s = strings.TrimSuffix(s, ".")
	last := s[strings.LastIndexByte(s, '.')+1:]
	if last == "" {
		return false
	}
	for _, c := range last {
		if (c < '0' || c > '9') && c != 'x' && c != 'X' {
			return false
		}
	}
	return last[0] >= '0' && last[0] <= '9'
}

// normaliseName lower-cases a host name, drops one trailing dot and checks
// it is a name: labels of letters, digits, '-' and '_' (1 to 63 bytes, no
// '-' at either end), at most 253 bytes in all.
func normaliseName(s string) (string, error) {
	h := strings.ToLower(strings.TrimSuffix(s, "."))
	if strings.Contains(h, "/") {
		return "", fmt.Errorf("an entry is a destination, not a URL: drop the path and write only the host (and :port)")
	}
	if strings.Contains(h, "*") {
		return "", fmt.Errorf("* is only allowed as a whole first label, as in *.example.com (matching names below example.com)")
	}
	if h == "" {
		return "", fmt.Errorf("the host name is empty")
	}
	if len(h) > 253 {
		return "", fmt.Errorf("a host name is at most 253 bytes")
	}
	if isIPv4ish(h) {
		return "", fmt.Errorf("%q is neither a host name nor an IP address (a name's last label cannot be all digits)", s)
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" {
			return "", fmt.Errorf("%q has an empty label (two dots in a row, or a leading dot)", s)
		}
		if len(label) > 63 {
			return "", fmt.Errorf("the label %q is longer than 63 bytes", label)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return "", fmt.Errorf("the label %q cannot start or end with '-'", label)
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("%q contains %q: a host name has only letters, digits, '-', '_' and '.'", s, string(c))
			}
		}
	}
	return h, nil
}

func allDigits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// hostOfURL guesses the host[:port] of a URL-looking entry, for the hint.
func hostOfURL(s string) string {
	_, rest, _ := strings.Cut(s, "://")
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		rest = rest[i+1:]
	}
	if rest == "" {
		return "example.com"
	}
	return rest
}

// String is the entry as written.
func (e Entry) String() string { return e.Raw }

// coversPort reports whether the entry covers port; deny says the entry is in a
// deny list, where no port means every port.
func (e Entry) coversPort(port int, deny bool) bool {
	if e.Port != 0 {
		return e.Port == port
	}
	if deny {
		return true
	}
	for _, p := range DefaultPorts {
		if p == port {
			return true
		}
	}
	return false
}
