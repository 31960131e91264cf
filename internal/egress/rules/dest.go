package rules

import (
	"fmt"
	"net/url"
	"strings"
)

// ParseDestination reads what `runner egress check` is asked about: HOST,
// HOST:PORT, [IPv6]:PORT, a bare IPv6 address, or an http(s) URL (its host,
// and its port or the scheme's). Without a port it is 443, the port agents
// reach APIs on. The host comes back normalised (lower case, no trailing
// dot, IPv6 without brackets); it is checked to be a name or an IP literal.
func ParseDestination(s string) (host string, port int, err error) {
	if strings.ContainsAny(s, " \t\r\n") || s == "" {
		return "", 0, fmt.Errorf("%q is not a destination: give HOST, HOST:PORT or a URL", s)
	}
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return "", 0, fmt.Errorf("%q is not a URL a proxy could be asked for", s)
		}
		def := map[string]string{"https": "443", "http": "80"}[strings.ToLower(u.Scheme)]
		if def == "" {
			return "", 0, fmt.Errorf("%q: the proxy carries http and https (and CONNECT to HOST:PORT); give HOST:PORT for other protocols", s)
		}
		s = u.Host
		if u.Port() == "" {
			s = bracket(u.Hostname()) + ":" + def
		}
	}
	h, p, err := splitPort(s)
	if err != nil {
		return "", 0, err
	}
	if p == 0 {
		p = 443
	}
	t, ok := parseTarget(h)
	if !ok {
		return "", 0, fmt.Errorf("%q is neither a host name nor an IP address", h)
	}
	if t.addr.IsValid() {
		return t.addr.String(), p, nil
	}
	return t.name, p, nil
}

func bracket(h string) string {
	if strings.Contains(h, ":") {
		return "[" + h + "]"
	}
	return h
}
