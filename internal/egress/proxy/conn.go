package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// conn is one client connection on an agent's socket.
type conn struct {
	client net.Conn
	ag     *agent
	start  time.Time
	dest   *dest // set, under ag.mu, once the destination was dialled

	mu     sync.Mutex
	up     net.Conn
	ended  bool
	reason string

	bytesUp, bytesDown atomic.Int64
	last               atomic.Int64 // unix nanoseconds of the last byte either way
}

// dest is where a connection was let through to, kept so UpdateRules can
// judge it again.
type dest struct {
	host       string
	port       int
	addr       netip.Addr
	restricted bool // addr is one only an IP entry may allow
	rule       string
}

func stillAllowed(rules Checker, d *dest) bool {
	if !rules.CheckName(d.host, d.port).Allowed {
		return false
	}
	if _, denied := deniedAddr(rules, d.addr, d.port); denied {
		return false
	}
	if d.restricted {
		_, ok := rules.NamedAddr(d.addr, d.port)
		return ok
	}
	return true
}

// end closes both sides of cn; the first reason given is kept.
func (cn *conn) end(reason string) {
	cn.mu.Lock()
	if !cn.ended {
		cn.ended = true
		cn.reason = reason
	}
	up := cn.up
	cn.mu.Unlock()
	cn.client.Close()
	if up != nil {
		up.Close()
	}
}

// setUp attaches the destination's connection, unless cn already ended.
func (cn *conn) setUp(up net.Conn) bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.ended {
		return false
	}
	cn.up = up
	return true
}

func (cn *conn) endReason() string {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.reason == "" {
		return "closed"
	}
	return cn.reason
}

func (cn *conn) touch() { cn.last.Store(time.Now().UnixNano()) }

// handle reads one request head and serves it.
func (s *Server) handle(ctx context.Context, cn *conn) {
	defer s.release(cn)
	c := cn.client
	lim := s.cfg.Limits
	c.SetReadDeadline(time.Now().Add(lim.HandshakeTimeout))
	br := bufio.NewReaderSize(c, lim.MaxHead)
	head, err := readHead(br, lim.MaxHead)
	if err != nil {
		switch {
		case errors.Is(err, errHeadTooLarge):
			s.refuse(cn, nil, badRequest(cn.ag.name, 431, fmt.Errorf("the request line and headers are over %d bytes", lim.MaxHead)))
		case errors.Is(err, os.ErrDeadlineExceeded):
			s.emit(Event{Agent: cn.ag.name, Kind: "bad_request", Reason: fmt.Sprintf("the request head did not arrive within %s", lim.HandshakeTimeout)})
		case errors.Is(err, io.ErrUnexpectedEOF):
			s.emit(Event{Agent: cn.ag.name, Kind: "bad_request", Reason: "the connection closed in the middle of the request head"})
		}
		return // io.EOF before any byte, or closed by Serve: nothing to say
	}
	req, err := parseHead(head)
	if err != nil {
		s.refuse(cn, nil, badRequest(cn.ag.name, 400, err))
		return
	}
	if req.method == "CONNECT" {
		s.connect(ctx, cn, br, req)
	} else {
		s.plain(ctx, cn, br, req)
	}
}

// release forgets cn: it no longer counts against its agent's limit.
func (s *Server) release(cn *conn) {
	cn.end("")
	cn.ag.mu.Lock()
	delete(cn.ag.conns, cn)
	cn.ag.mu.Unlock()
}

// refuse answers r, records it and ends cn. req is nil when the request
// could not be read.
func (s *Server) refuse(cn *conn, req *request, r *refusal) {
	cn.client.SetWriteDeadline(time.Now().Add(2 * time.Second))
	cn.client.Write(r.response())
	s.refused(cn, req, r)
}

// refused records a refusal the client was already told about.
func (s *Server) refused(cn *conn, req *request, r *refusal) {
	e := Event{Agent: cn.ag.name, Kind: r.kind, Rule: r.rule, Entry: r.entry, Addr: r.addr, Reason: r.line, Duration: time.Since(cn.start)}
	if !e.Addr.IsValid() && cn.dest != nil {
		e.Addr = cn.dest.addr // refused after the dial: SNI, hello
	}
	if req != nil {
		e.Method, e.Host, e.Port = req.method, req.host, req.port
		if r.kind == "deny" {
			s.count(cn.ag, req.host, req.port, false, r.rule, r.entry, r.line)
		}
	}
	cn.end("refused")
	s.emit(e)
}

// open decides req and dials its destination: the agent's rules on the
// name, then the proxy's own resolution, then the address checks. The
// connection is registered (cn.dest) only under the rules current at that
// moment, so UpdateRules cannot miss it.
func (s *Server) open(ctx context.Context, cn *conn, req *request) (net.Conn, *refusal) {
	ag, lim := cn.ag, s.cfg.Limits
	rules, gen := ag.current()
	v := rules.CheckName(req.host, req.port)
	if !v.Allowed {
		return nil, s.denied(ag.name, req, v)
	}
	addrs := []netip.Addr{req.ip}
	if !req.isIP() {
		rctx, cancel := context.WithTimeout(ctx, lim.ResolveTimeout)
		var err error
		addrs, err = s.cfg.Resolver.LookupNetIP(rctx, "ip", req.host)
		cancel()
		if err == nil && len(addrs) == 0 {
			err = errors.New("no addresses")
		}
		if err != nil {
			return nil, upstreamError(ag.name, req, "cannot resolve "+req.host, resolveError(err))
		}
	}
	type candidate struct {
		addr       netip.Addr
		rule       string
		restricted bool
	}
	var cands []candidate
	var firstBad *refusal
	for _, a := range addrs {
		a = a.Unmap().WithZone("")
		if rule, denied := deniedAddr(rules, a, req.port); denied {
			if firstBad == nil {
				firstBad = s.deniedAddress(ag.name, req, a, rule)
			}
			continue
		}
		why := restricted(a)
		if why == "" {
			cands = append(cands, candidate{a, v.Rule, false})
			continue
		}
		if r, ok := rules.NamedAddr(a, req.port); ok {
			rule := v.Rule
			if r != v.Rule {
				rule = v.Rule + "; " + r
			}
			cands = append(cands, candidate{a, rule, true})
		} else if firstBad == nil {
			firstBad = s.restrictedAddr(ag.name, req, a, why)
		}
	}
	if len(cands) == 0 {
		return nil, firstBad
	}
	var up net.Conn
	var d *dest
	var err error
	for _, c := range cands {
		dctx, cancel := context.WithTimeout(ctx, lim.DialTimeout)
		up, err = s.cfg.Dialer.DialContext(dctx, "tcp", netip.AddrPortFrom(c.addr, uint16(req.port)).String())
		cancel()
		if err == nil {
			d = &dest{host: req.host, port: req.port, addr: c.addr, restricted: c.restricted, rule: c.rule}
			break
		}
	}
	if up == nil {
		return nil, upstreamError(ag.name, req, "cannot connect", dialError(err))
	}
	ag.mu.Lock()
	if ag.gen != gen && !stillAllowed(ag.rules, d) {
		ag.mu.Unlock()
		up.Close()
		return nil, s.denied(ag.name, req, ag.currentVerdict(req))
	}
	cn.dest = d
	ag.mu.Unlock()
	if !cn.setUp(up) {
		up.Close()
		return nil, upstreamError(ag.name, req, "not connected", errors.New("the connection was closed"))
	}
	return up, nil
}

// resolveError and dialError say what failed without the host's own
// details (its resolver's address, its source ports).
func resolveError(err error) error {
	var de *net.DNSError
	switch {
	case errors.As(err, &de) && de.IsNotFound:
		return errors.New("no such host")
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &de) && de.IsTimeout:
		return errors.New("timed out")
	}
	return errors.New("name resolution failed")
}

func dialError(err error) error {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return errors.New("connection refused")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return errors.New("timed out")
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return errors.New("unreachable")
	}
	return errors.New("connect failed")
}

// finish records an allowed connection at its end.
func (s *Server) finish(cn *conn, req *request) {
	e := Event{Agent: cn.ag.name, Kind: "allow", Method: req.method, Host: req.host, Port: req.port,
		BytesUp: cn.bytesUp.Load(), BytesDown: cn.bytesDown.Load(), Duration: time.Since(cn.start), Reason: cn.endReason()}
	if cn.dest != nil {
		e.Addr, e.Rule = cn.dest.addr, cn.dest.rule
	}
	s.emit(e)
}
