package proxy

import (
	"bufio"
	"context"
	"time"
)

const connectOK = "HTTP/1.1 200 Connection established\r\n\r\n"

// connect serves a CONNECT: decide, dial, answer 200, then read what the
// client sends first. A TLS ClientHello must name the CONNECT's host, or
// none: a server name that differs is domain fronting (the destination's
// front end would route to that other name) and the tunnel is refused with
// a TLS access_denied alert, the only answer a TLS client can read at that
// point. Without SNI the tunnel is allowed: the address is still the one
// the proxy resolved for an allowed name. Non-TLS protocols pass
// unchanged, but the client must speak first (TLS, SSH, git do) — except
// cleartext HTTP: its Host header would pick a site on the destination
// that the rules never saw, so it must come as an absolute-URI request,
// where the proxy checks Host.
func (s *Server) connect(ctx context.Context, cn *conn, br *bufio.Reader, req *request) {
	up, r := s.open(ctx, cn, req)
	if r != nil {
		s.refuse(cn, req, r)
		return
	}
	c, lim := cn.client, s.cfg.Limits
	c.SetWriteDeadline(time.Now().Add(lim.HandshakeTimeout))
	if _, err := c.Write([]byte(connectOK)); err != nil {
		s.finish(cn, req)
		return
	}
	c.SetWriteDeadline(time.Time{})
	c.SetReadDeadline(time.Now().Add(lim.HandshakeTimeout))
	first, err := br.Peek(1)
	if err != nil {
		cn.end("closed: the client sent nothing through the tunnel")
		s.count(cn.ag, req.host, req.port, true, cn.dest.rule, "", "")
		s.finish(cn, req)
		return
	}
	var pre []byte
	if first[0] == recordHandshake {
		raw, h, err := readClientHello(br)
		if err != nil {
			c.Write(alert(50)) // decode_error
			s.refused(cn, req, &refusal{status: 403, kind: "deny", line: "runner egress: " + where(req) + " refused for agent \"" + cn.ag.name + "\": the TLS ClientHello is malformed: " + clean(err.Error())})
			return
		}
		if h.hasSNI && (req.isIP() || h.sni != req.host) {
			c.Write(alert(alertAccessDenied))
			s.refused(cn, req, s.sniMismatch(cn.ag.name, req, h))
			return
		}
		pre = raw
	} else if looksLikeHTTP(br) {
		s.refuse(cn, req, s.httpInTunnel(cn.ag.name, req))
		return
	}
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		pre = append(pre, b...)
	}
	c.SetReadDeadline(time.Time{})
	s.count(cn.ag, req.host, req.port, true, cn.dest.rule, "", "")
	if first[0] == recordHandshake && !req.isIP() && s.cfg.Intercept != nil && s.cfg.Intercept.Intercepts(cn.ag.name, req.host, req.port) {
		s.intercept(ctx, cn, up, req, pre)
		s.finish(cn, req)
		return
	}
	if len(pre) > 0 {
		up.SetWriteDeadline(time.Now().Add(lim.HandshakeTimeout))
		if _, err := up.Write(pre); err != nil {
			cn.end("closed: the destination did not take the first bytes")
			s.finish(cn, req)
			return
		}
		up.SetWriteDeadline(time.Time{})
		cn.bytesUp.Add(int64(len(pre)))
		s.addBytes(cn.ag, req.host, req.port, int64(len(pre)), 0)
	}
	s.tunnel(cn, up, req, false)
	s.finish(cn, req)
}

// looksLikeHTTP says whether the tunnel starts with an HTTP request line:
// an upper-case method and a space. It peeks no further than a method's
// letters, so other protocols are not held waiting for bytes.
func looksLikeHTTP(br *bufio.Reader) bool {
	for n := 1; n <= 16; n++ {
		b, err := br.Peek(n)
		if err != nil {
			return false
		}
		switch c := b[n-1]; {
		case c == ' ':
			return n > 1
		case c < 'A' || c > 'Z':
			return false
		}
	}
	return false
}
