package proxy

import (
	"context"
	"net"
	"sync/atomic"
)

// Interceptor takes over a CONNECT tunnel whose destination carries an
// injected credential (internal/egress/inject): it terminates the client's
// TLS and speaks TLS, verified, to the destination itself. Every other
// tunnel stays end to end. The proxy has already decided, resolved,
// dialled (up is the address it resolved for an allowed name) and checked
// the ClientHello's server name; it still owns both connections (closing
// them ends the interception, as a rules change does).
type Interceptor interface {
	// Intercepts says whether agent's tunnel to host:port carries a
	// credential. It is asked only for names, never IP literals.
	Intercepts(agent, host string, port int) bool
	// Serve runs the interception until either side is done. client
	// replays the ClientHello the proxy read.
	Serve(ctx context.Context, agent, host string, port int, client, up net.Conn)
}

// replayConn is the client's connection with the bytes the proxy already
// read from it (the ClientHello) put back in front.
type replayConn struct {
	net.Conn
	pre []byte
	n   *atomic.Int64
	on  func(int64)
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		k := copy(p, c.pre)
		c.pre = c.pre[k:]
		return k, nil
	}
	k, err := c.Conn.Read(p)
	if k > 0 {
		c.n.Add(int64(k))
		c.on(int64(k))
	}
	return k, err
}

// countedConn counts what is read from the destination.
type countedConn struct {
	net.Conn
	n  *atomic.Int64
	on func(int64)
}

func (c *countedConn) Read(p []byte) (int, error) {
	k, err := c.Conn.Read(p)
	if k > 0 {
		c.n.Add(int64(k))
		c.on(int64(k))
	}
	return k, err
}

// intercept hands a tunnel to the Interceptor, counting bytes as the
// tunnel does (up: from the client; down: from the destination).
func (s *Server) intercept(ctx context.Context, cn *conn, up net.Conn, req *request, pre []byte) {
	cn.bytesUp.Add(int64(len(pre)))
	s.addBytes(cn.ag, req.host, req.port, int64(len(pre)), 0)
	client := &replayConn{Conn: cn.client, pre: pre, n: &cn.bytesUp, on: func(k int64) {
		cn.touch()
		s.addBytes(cn.ag, req.host, req.port, k, 0)
	}}
	dst := &countedConn{Conn: up, n: &cn.bytesDown, on: func(k int64) {
		cn.touch()
		s.addBytes(cn.ag, req.host, req.port, 0, k)
	}}
	s.cfg.Intercept.Serve(ctx, cn.ag.name, req.host, req.port, client, dst)
	cn.end("")
}
