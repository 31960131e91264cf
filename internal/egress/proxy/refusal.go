package proxy

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/runner-dev/runner/internal/egress/rules"
)

// refusal is an answer that ends a request: an HTTP status and the one
// line its body holds. Every string in line is either validated (agent
// names, host names, IP addresses, rule entries) or quoted.
type refusal struct {
	status int
	kind   string // deny, bad_request, limit, error
	line   string
	rule   string
	entry  string     // the allow entry that would let it through, when one would
	addr   netip.Addr // the resolved address that was refused, if one was
}

var statusText = map[int]string{
	400: "Bad Request",
	403: "Forbidden",
	431: "Request Header Fields Too Large",
	502: "Bad Gateway",
	503: "Service Unavailable",
}

// response is the whole HTTP response for r.
func (r *refusal) response() []byte {
	body := r.line + "\n"
	return fmt.Appendf(nil, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		r.status, statusText[r.status], len(body), body)
}

// where names the request in a refusal: "CONNECT pypi.org:443" or
// "GET http://example.com:8080".
func where(req *request) string {
	if req.method == "CONNECT" {
		return "CONNECT " + hostPort(req.host, req.port)
	}
	return quoteToken(req.method) + " http://" + hostPort(req.host, req.port)
}

// hostPort joins a validated host and a port; IPv6 gets brackets.
func hostPort(host string, port int) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + strconv.Itoa(port)
	}
	return host + ":" + strconv.Itoa(port)
}

// entryFor is the allow entry that names host:port, as the rules package
// suggests it: ports 443 and 80 are what an entry without a port allows.
func entryFor(host string, port int) string {
	if e, ok := rules.Suggest(host, port); ok {
		return e
	}
	if port == 443 || port == 80 {
		if strings.Contains(host, ":") {
			return "[" + host + "]"
		}
		return host
	}
	return hostPort(host, port)
}

func (s *Server) fix(agent, entry, list string) string {
	return fmt.Sprintf("add %q to agent %q's egress %s list in %s", entry, agent, list, s.agentsFile)
}

// denied is the refusal for a verdict that does not allow req.
func (s *Server) denied(agent string, req *request, v Verdict) *refusal {
	dest := where(req)
	if v.Deny {
		return &refusal{status: 403, kind: "deny", rule: v.Rule, line: fmt.Sprintf(
			"runner egress: %s refused for agent %q by deny entry %q (deny wins over allow); to allow it, remove that entry from agent %q's egress deny list in %s",
			dest, agent, v.Rule, agent, s.agentsFile)}
	}
	e := entryFor(req.host, req.port)
	return &refusal{status: 403, kind: "deny", entry: e, line: fmt.Sprintf(
		"runner egress: %s refused for agent %q: no rule allows it; to allow it, %s",
		dest, agent, s.fix(agent, e, "allow"))}
}

// restrictedAddr is the refusal for a name whose every address is one the
// proxy dials only when an IP entry names it.
func (s *Server) restrictedAddr(agent string, req *request, a netip.Addr, why string) *refusal {
	e := entryFor(a.String(), req.port)
	return &refusal{status: 403, kind: "deny", entry: e, addr: a, line: fmt.Sprintf(
		"runner egress: %s refused for agent %q: it resolves to %s, %s, which only an IP entry may allow; if that is meant, %s",
		where(req), agent, a, why, s.fix(agent, e, "allow"))}
}

// deniedAddress is the refusal for a name that resolves into a deny entry's
// addresses.
func (s *Server) deniedAddress(agent string, req *request, a netip.Addr, rule string) *refusal {
	return &refusal{status: 403, kind: "deny", rule: rule, addr: a, line: fmt.Sprintf(
		"runner egress: %s refused for agent %q: it resolves to %s, which deny entry %q covers (deny wins over allow); to allow it, remove that entry from agent %q's egress deny list in %s",
		where(req), agent, a, rule, agent, s.agentsFile)}
}

func (s *Server) sniMismatch(agent string, req *request, h hello) *refusal {
	return &refusal{status: 403, kind: "deny", line: fmt.Sprintf(
		"runner egress: %s refused for agent %q: the TLS server name is %s, not the host of the CONNECT (domain fronting); connect to the host you mean",
		where(req), agent, strconv.Quote(h.sni))}
}

func (s *Server) httpInTunnel(agent string, req *request) *refusal {
	return &refusal{status: 403, kind: "deny", line: fmt.Sprintf(
		"runner egress: %s refused for agent %q: plain HTTP inside a CONNECT tunnel is not allowed; send http:// requests to the proxy as absolute URLs (HTTP_PROXY does that)",
		where(req), agent)}
}

func (s *Server) hostMismatch(agent string, req *request, host string) *refusal {
	return &refusal{status: 403, kind: "deny", line: fmt.Sprintf(
		"runner egress: %s refused for agent %q: the Host header says %s, not the URL's host; send the request with a Host header that matches the URL",
		where(req), agent, quote(host))}
}

func badRequest(agent string, status int, err error) *refusal {
	return &refusal{status: status, kind: "bad_request", line: fmt.Sprintf(
		"runner egress: bad request from agent %q: %s", agent, clean(err.Error()))}
}

func upstreamError(agent string, req *request, what string, err error) *refusal {
	return &refusal{status: 502, kind: "error", line: fmt.Sprintf(
		"runner egress: %s for agent %q: %s: %s", where(req), agent, what, clean(err.Error()))}
}

func tooMany(agent string, n int) *refusal {
	return &refusal{status: 503, kind: "limit", line: fmt.Sprintf(
		"runner egress: agent %q has %d connections open, its limit; close some and retry", agent, n)}
}

// quote shows an untrusted string: Go-quoted ASCII, at most 64 bytes of it.
func quote(s string) string {
	if len(s) > 64 {
		return strconv.QuoteToASCII(s[:64]) + "…"
	}
	return strconv.QuoteToASCII(s)
}

// quoteToken shows a method: tokens are safe, but long ones are cut.
func quoteToken(s string) string {
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}

// clean keeps an error text to one line of printable ASCII, at most 200
// bytes: the errors are the proxy's own, but may carry what a client sent.
func clean(s string) string {
	b := []byte(s)
	if len(b) > 200 {
		b = append(b[:200], "..."...)
	}
	for i, c := range b {
		if c < ' ' || c > '~' {
			b[i] = '?'
		}
	}
	return string(b)
}
