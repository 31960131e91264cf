package proxy

import (
	"bufio"
	"context"
	"errors"
	"strings"
	"time"
)

// hopByHop are the headers that concern the connection to the proxy, not
// the destination; they are not forwarded.
var hopByHop = map[string]bool{
	"connection": true, "proxy-connection": true, "keep-alive": true,
	"proxy-authorization": true, "proxy-authenticate": true, "te": true,
	"trailer": true, "transfer-encoding": false, "upgrade": true,
}

// plain serves an absolute-URI request (GET http://host/path). The Host
// header, when there is one, must name the URL's host and port: a server
// that routes by Host would otherwise serve a name the rules never saw.
// One request per connection: the request goes out with "Connection:
// close", so anything the client sends after it reaches the same server
// only.
func (s *Server) plain(ctx context.Context, cn *conn, br *bufio.Reader, req *request) {
	var hosts []string
	drop := map[string]bool{}
	for _, h := range req.headers {
		name := strings.ToLower(h.name)
		switch name {
		case "host":
			hosts = append(hosts, h.value)
		case "connection", "proxy-connection":
			for _, t := range strings.Split(h.value, ",") {
				drop[strings.ToLower(strings.TrimSpace(t))] = true
			}
		}
	}
	if len(hosts) > 1 {
		s.refuse(cn, req, s.hostMismatch(cn.ag.name, req, strings.Join(hosts, ", ")))
		return
	}
	if len(hosts) == 1 {
		h, _, p, err := parseAuthority(hosts[0], 80)
		if err != nil || h != req.host || p != req.port {
			s.refuse(cn, req, s.hostMismatch(cn.ag.name, req, hosts[0]))
			return
		}
	}
	if drop["host"] {
		s.refuse(cn, req, badRequest(cn.ag.name, 400, errors.New("the Connection header names Host")))
		return
	}
	up, r := s.open(ctx, cn, req)
	if r != nil {
		s.refuse(cn, req, r)
		return
	}
	out := make([]byte, 0, 512)
	out = append(out, req.method+" "+req.path+" "+req.proto+"\r\n"...)
	if len(hosts) == 0 {
		out = append(out, "Host: "+authority(req)+"\r\n"...)
	}
	for _, h := range req.headers {
		name := strings.ToLower(h.name)
		if hopByHop[name] || drop[name] {
			continue
		}
		out = append(out, h.name+": "+h.value+"\r\n"...)
	}
	out = append(out, "Connection: close\r\n\r\n"...)
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		out = append(out, b...)
	}
	cn.client.SetReadDeadline(time.Time{})
	s.count(cn.ag, req.host, req.port, true, cn.dest.rule, "", "")
	up.SetWriteDeadline(time.Now().Add(s.cfg.Limits.HandshakeTimeout))
	if _, err := up.Write(out); err != nil {
		cn.end("closed: the destination did not take the request")
		s.finish(cn, req)
		return
	}
	up.SetWriteDeadline(time.Time{})
	cn.bytesUp.Add(int64(len(out)))
	s.addBytes(cn.ag, req.host, req.port, int64(len(out)), 0)
	s.tunnel(cn, up, req, true)
	s.finish(cn, req)
}

// authority is the Host header for a request that had none.
func authority(req *request) string {
	hp := hostPort(req.host, req.port)
	if req.port == 80 {
		return strings.TrimSuffix(hp, ":80")
	}
	return hp
}
