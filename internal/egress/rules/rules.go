package rules

import (
	"fmt"
	"net/netip"
	"strings"
)

// Verdict is the decision on a requested destination by name, before resolution.
type Verdict struct {
	Allowed bool
	Rule    string // the entry that decided, as the file wrote it ("" when no entry matched: denied by default)
	Deny    bool   // true when a deny entry decided
}

// Checker is what the egress proxy asks about one agent's destinations. It
// is the whole contract: the proxy calls CheckName on the host:port of the
// CONNECT line or absolute URI (before it resolves anything), then, for each
// address it resolved and is about to dial that is loopback, private (RFC
// 1918, ULA), link-local, CGNAT, multicast or unspecified, NamedAddr; any
// such address is refused unless NamedAddr says an entry names it. A
// Checker is immutable and safe for concurrent use; a rules change is a new
// Checker.
type Checker interface {
	// CheckName decides host:port as requested (host is a name or an IP literal).
	CheckName(host string, port int) Verdict
	// NamedAddr reports whether an IP or CIDR entry names ip:port explicitly; only such
	// entries allow loopback, private, link-local, CGNAT, multicast or unspecified addresses.
	NamedAddr(ip netip.Addr, port int) (rule string, ok bool)
}

// AddrDenier is optional (Rules implements it): DeniedAddr reports the deny
// entry, if any, whose IP or CIDR covers a resolved address, so that
// deny = ["203.0.113.0/24"] also refuses a name that resolves into it.
// Proxies should check it on every resolved address, after CheckName.
type AddrDenier interface {
	DeniedAddr(ip netip.Addr, port int) (rule string, ok bool)
}

// Rules is one agent's compiled allow and deny lists. The zero value and a
// nil *Rules deny everything.
type Rules struct {
	allow, deny []Entry
}

var (
	_ Checker    = (*Rules)(nil)
	_ AddrDenier = (*Rules)(nil)
)

// EntryError is a bad entry in a list given to Compile.
type EntryError struct {
	List  string // "allow" or "deny"
	Index int    // position in that list, from 0
	Entry string // as written
	Err   error
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("%s[%d] %q: %s", e.List, e.Index, e.Entry, e.Err)
}

func (e *EntryError) Unwrap() error { return e.Err }

// Compile parses both lists. It reports the first bad entry as an
// *EntryError; config reports every bad entry itself, with its position.
func Compile(allow, deny []string) (*Rules, error) {
	r := &Rules{}
	for i, s := range allow {
		e, err := Parse(s)
		if err != nil {
			return nil, &EntryError{List: "allow", Index: i, Entry: s, Err: err}
		}
		r.allow = append(r.allow, e)
	}
	for i, s := range deny {
		e, err := Parse(s)
		if err != nil {
			return nil, &EntryError{List: "deny", Index: i, Entry: s, Err: err}
		}
		r.deny = append(r.deny, e)
	}
	return r, nil
}

// Allow and Deny return the parsed lists, in file order.
func (r *Rules) Allow() []Entry {
	if r == nil {
		return nil
	}
	return r.allow
}

func (r *Rules) Deny() []Entry {
	if r == nil {
		return nil
	}
	return r.deny
}

// Len is the number of entries in both lists.
func (r *Rules) Len() int { return len(r.Allow()) + len(r.Deny()) }

// target is a requested destination, normalised once.
type target struct {
	name string     // lower case, no trailing dot; "" when addr is set
	addr netip.Addr // an IP literal, unmapped
}

// parseTarget normalises a requested host. ok is false for anything that is
// neither a valid name nor an IP literal (it then matches no entry).
func parseTarget(host string) (target, bool) {
	h := host
	if inner, ok := strings.CutPrefix(h, "["); ok {
		inner, ok = strings.CutSuffix(inner, "]")
		if !ok || !strings.Contains(inner, ":") {
			return target{}, false
		}
		h = inner
	}
	if a, err := netip.ParseAddr(h); err == nil {
		if a.Zone() != "" {
			return target{}, false
		}
		return target{addr: a.Unmap()}, true
	}
	if strings.ContainsAny(h, ":[]") {
		return target{}, false
	}
	name, err := normaliseName(h)
	if err != nil {
		return target{}, false
	}
	return target{name: name}, true
}

func (e Entry) matches(t target) bool {
	switch e.Kind {
	case KindName:
		return t.name != "" && t.name == e.Host
	case KindWildcard:
		return t.name != "" && strings.HasSuffix(t.name, "."+e.Host)
	case KindIP, KindCIDR:
		return t.addr.IsValid() && e.Prefix.Contains(t.addr)
	}
	return false
}

// CheckName implements Checker. Deny entries are consulted first and win;
// otherwise the first allow entry that matches decides; otherwise the
// destination is denied by default. A name entry never matches an IP
// literal (nor the reverse): allowing a name does not allow its address.
func (r *Rules) CheckName(host string, port int) Verdict {
	if r == nil || port < 1 || port > 65535 {
		return Verdict{}
	}
	t, ok := parseTarget(host)
	if !ok {
		return Verdict{}
	}
	for _, e := range r.deny {
		if e.coversPort(port, true) && e.matches(t) {
			return Verdict{Rule: e.Raw, Deny: true}
		}
	}
	for _, e := range r.allow {
		if e.coversPort(port, false) && e.matches(t) {
			return Verdict{Allowed: true, Rule: e.Raw}
		}
	}
	return Verdict{}
}

// NamedAddr implements Checker: the first allow entry that is an IP or CIDR
// containing ip and covering port, unless a deny entry covers ip:port.
func (r *Rules) NamedAddr(ip netip.Addr, port int) (string, bool) {
	if r == nil || !ip.IsValid() || ip.Zone() != "" || port < 1 || port > 65535 {
		return "", false
	}
	t := target{addr: ip.Unmap()}
	if _, denied := r.DeniedAddr(ip, port); denied {
		return "", false
	}
	for _, e := range r.allow {
		if e.coversPort(port, false) && e.matches(t) {
			return e.Raw, true
		}
	}
	return "", false
}

// DeniedAddr implements AddrDenier.
func (r *Rules) DeniedAddr(ip netip.Addr, port int) (string, bool) {
	if r == nil || !ip.IsValid() {
		return "", false
	}
	t := target{addr: ip.WithZone("").Unmap()}
	for _, e := range r.deny {
		if e.coversPort(port, true) && e.matches(t) {
			return e.Raw, true
		}
	}
	return "", false
}
