package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// request is a parsed request head. Everything in it came from an agent:
// host is validated (a lower-case name or an IP literal), the rest is only
// ever quoted when shown.
type request struct {
	method  string
	target  string // as sent
	proto   string // HTTP/1.0 or HTTP/1.1
	host    string // lower case, no trailing dot; an IPv6 literal without brackets
	ip      netip.Addr
	port    int
	path    string   // plain HTTP: the origin-form target sent upstream
	headers []header // in order, as sent
}

type header struct{ name, value string }

func (r *request) isIP() bool { return r.ip.IsValid() }

// errHeadTooLarge is answered with 431.
var errHeadTooLarge = errors.New("request line and headers exceed the limit")

const maxHeaders = 100

// readHead reads a request line and headers, at most max bytes including
// the blank line that ends them. Only what belongs to the head is
// consumed; what follows stays in br.
func readHead(br *bufio.Reader, max int) ([]byte, error) {
	var head []byte
	for {
		line, err := br.ReadSlice('\n')
		if len(head)+len(line) > max || errors.Is(err, bufio.ErrBufferFull) {
			return nil, errHeadTooLarge
		}
		if err != nil {
			if errors.Is(err, io.EOF) && len(head)+len(line) > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		head = append(head, line...)
		if len(line) == 2 && line[0] == '\r' || len(line) == 1 {
			return head, nil
		}
	}
}

// parseHead parses what readHead returned. It is strict: CRLF line ends,
// one space between the three parts of the request line, token methods and
// header names, no control characters, no folded headers.
func parseHead(head []byte) (*request, error) {
	lines := bytes.Split(head, []byte("\n"))
	// The head ends with "\r\n\r\n": the last two elements are "\r" and "".
	if len(lines) < 3 || len(lines[len(lines)-1]) != 0 {
		return nil, errors.New("the request head does not end with an empty line")
	}
	lines = lines[:len(lines)-2]
	if !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		return nil, errors.New("lines must end with CRLF")
	}
	for i, l := range lines {
		if len(l) == 0 || l[len(l)-1] != '\r' {
			return nil, errors.New("lines must end with CRLF")
		}
		lines[i] = l[:len(l)-1]
	}
	if len(lines)-1 > maxHeaders {
		return nil, fmt.Errorf("more than %d headers", maxHeaders)
	}
	r := &request{}
	parts := strings.Split(string(lines[0]), " ")
	if len(parts) != 3 {
		return nil, errors.New("the request line is not METHOD TARGET HTTP/1.x")
	}
	r.method, r.target, r.proto = parts[0], parts[1], parts[2]
	if !isToken(r.method) {
		return nil, errors.New("the method is not a token")
	}
	if r.proto != "HTTP/1.1" && r.proto != "HTTP/1.0" {
		return nil, errors.New("only HTTP/1.0 and HTTP/1.1 are spoken here")
	}
	if r.target == "" || strings.ContainsFunc(r.target, func(c rune) bool { return c <= ' ' || c >= 0x7f }) {
		return nil, errors.New("the request target has control characters, spaces or non-ASCII bytes")
	}
	for _, l := range lines[1:] {
		if len(l) == 0 {
			return nil, errors.New("an empty line inside the headers")
		}
		if l[0] == ' ' || l[0] == '\t' {
			return nil, errors.New("folded header lines are not accepted")
		}
		name, value, ok := bytes.Cut(l, []byte(":"))
		if !ok || !isToken(string(name)) {
			return nil, errors.New("a header line is not NAME: VALUE")
		}
		v := strings.Trim(string(value), " \t")
		if strings.ContainsFunc(v, func(c rune) bool { return c < ' ' && c != '\t' || c == 0x7f }) {
			return nil, errors.New("a header value has control characters")
		}
		r.headers = append(r.headers, header{string(name), v})
	}
	var err error
	if r.method == "CONNECT" {
		r.host, r.ip, r.port, err = parseAuthority(r.target, 0)
		if err != nil {
			return nil, fmt.Errorf("CONNECT wants host:port: %w", err)
		}
		return r, nil
	}
	rest, ok := cutPrefixFold(r.target, "http://")
	if !ok {
		if _, ok := cutPrefixFold(r.target, "https://"); ok {
			return nil, errors.New("send https:// requests with CONNECT, not as a plain request")
		}
		return nil, errors.New("this is a proxy: the request target must be an absolute http:// URL")
	}
	i := strings.IndexAny(rest, "/?#")
	if i < 0 {
		i = len(rest)
	}
	r.host, r.ip, r.port, err = parseAuthority(rest[:i], 80)
	if err != nil {
		return nil, fmt.Errorf("the URL's host: %w", err)
	}
	r.path = rest[i:]
	if j := strings.IndexByte(r.path, '#'); j >= 0 {
		r.path = r.path[:j]
	}
	if r.path == "" || r.path[0] == '?' {
		r.path = "/" + r.path
	}
	return r, nil
}

// parseAuthority parses host[:port]; without a port, defPort applies (0:
// the port is required). The host is a DNS name or an IP literal (IPv6 in
// brackets); userinfo is refused.
func parseAuthority(s string, defPort int) (host string, ip netip.Addr, port int, err error) {
	if strings.Contains(s, "@") {
		return "", ip, 0, errors.New("user info (@) is not accepted")
	}
	h, p := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", ip, 0, errors.New("an unclosed [")
		}
		h, p = s[1:end], s[end+1:]
		if p != "" && p[0] != ':' {
			return "", ip, 0, errors.New("junk after ]")
		}
		p = strings.TrimPrefix(p, ":")
		ip, err = netip.ParseAddr(h)
		if err != nil || !ip.Is6() || ip.Zone() != "" {
			return "", netip.Addr{}, 0, errors.New("not an IPv6 address in brackets")
		}
		h = ip.String()
	} else if i := strings.LastIndexByte(s, ':'); i >= 0 {
		h, p = s[:i], s[i+1:]
		if p == "" {
			return "", ip, 0, errors.New("an empty port")
		}
	}
	if p == "" {
		if defPort == 0 {
			return "", ip, 0, errors.New("no port")
		}
		port = defPort
	} else {
		n, perr := strconv.Atoi(p)
		if perr != nil || n < 1 || n > 65535 || p[0] == '0' || p[0] == '+' {
			return "", ip, 0, errors.New("the port is not a number from 1 to 65535")
		}
		port = n
	}
	if ip.IsValid() {
		return h, ip, port, nil
	}
	if a, perr := netip.ParseAddr(h); perr == nil && a.Is4() {
		return a.String(), a, port, nil
	}
	name, ok := canonicalName(h)
	if !ok {
		return "", ip, 0, errors.New("not a valid host name or IP address")
	}
	return name, ip, port, nil
}

// canonicalName lower-cases a DNS name and drops one trailing dot. Labels
// are 1 to 63 letters, digits, '-' or '_', not starting or ending with '-';
// the last label is not all digits, so no resolver can read the name as a
// number (127.1, 2130706433, 0x7f.1).
func canonicalName(s string) (string, bool) {
	s = strings.ToLower(strings.TrimSuffix(s, "."))
	if s == "" || len(s) > 253 {
		return "", false
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "", false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", false
			}
		}
	}
	last := labels[len(labels)-1]
	if strings.Trim(last, "0123456789") == "" || strings.HasPrefix(last, "0x") {
		return "", false
	}
	return s, true
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
