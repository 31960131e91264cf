package shim

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// Where runner puts an agent's egress proxy socket (profile.EgressSocket)
// and where the agent's proxy variables point (profile.EgressListen).
// EnvEgress = "1" (profile.EnvEgress, set by runner for an agent with
// egress) turns the forwarder on.
const (
	DefaultEgressSocket = "/run/runner-egress/proxy.sock"
	DefaultEgressListen = "127.0.0.1:3128"
	EnvEgress           = "RUNNER_EGRESS"
)

// Forwarder bounds.
const (
	// DefaultEgressMaxConns caps concurrent forwarded connections; the
	// next one waits in the kernel's accept queue until one ends. The
	// proxy has its own per-agent cap; this keeps the shim's memory bounded.
	DefaultEgressMaxConns = 256
	// egressBuf is each direction's copy buffer: the only buffering.
	egressBuf = 16 << 10
	// egressDialTimeout bounds reaching the proxy socket.
	egressDialTimeout = 5 * time.Second
)

// EgressForwarder listens on the container's loopback (its network
// namespace has only lo) and forwards each TCP connection, byte for byte,
// to the agent's egress proxy socket. It does not parse anything: the proxy
// on the host speaks HTTP and decides.
type EgressForwarder struct {
	Listen   string // default DefaultEgressListen
	Socket   string // default DefaultEgressSocket
	MaxConns int    // default DefaultEgressMaxConns
	Logf     func(format string, a ...any)

	ln       net.Listener
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	closed   bool
	lastWarn time.Time
}

// egressEnabled reports whether the environment asks for the forwarder.
func egressEnabled() bool { return os.Getenv(EnvEgress) == "1" }

// Start listens, so that a client started afterwards finds the port open,
// and serves in the background until ctx ends or Close is called.
func (f *EgressForwarder) Start(ctx context.Context) error {
	if f.Listen == "" {
		f.Listen = DefaultEgressListen
	}
	if f.Socket == "" {
		f.Socket = DefaultEgressSocket
	}
	if f.MaxConns <= 0 {
		f.MaxConns = DefaultEgressMaxConns
	}
	if f.Logf == nil {
		f.Logf = func(string, ...any) {}
	}
	ln, err := net.Listen("tcp", f.Listen)
	if err != nil {
		return err
	}
	f.ln = ln
	f.conns = map[net.Conn]struct{}{}
	f.wg.Add(1)
	go f.serve()
	go func() {
		<-ctx.Done()
		f.Close()
	}()
	return nil
}

// Addr is the address listened on (after Start).
func (f *EgressForwarder) Addr() net.Addr { return f.ln.Addr() }

// Close stops listening, closes every forwarded connection and waits for
// them to end.
func (f *EgressForwarder) Close() {
	f.ln.Close()
	f.mu.Lock()
	f.closed = true
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

func (f *EgressForwarder) serve() {
	defer f.wg.Done()
	slots := make(chan struct{}, f.MaxConns)
	for {
		slots <- struct{}{} // accept only with a free slot
		c, err := f.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			<-slots
			f.warn("egress forwarder: accept: %v", err)
			time.Sleep(50 * time.Millisecond) // e.g. EMFILE: do not spin
			continue
		}
		f.wg.Add(1)
		go func() {
			defer func() { <-slots; f.wg.Done() }()
			f.forward(c)
		}()
	}
}

// track registers c so that Close reaches it; false once Close began
// (the caller then drops c).
func (f *EgressForwarder) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *EgressForwarder) untrack(c net.Conn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
	c.Close()
}

func (f *EgressForwarder) forward(client net.Conn) {
	if !f.track(client) {
		client.Close()
		return
	}
	defer f.untrack(client)
	proxy, err := net.DialTimeout("unix", f.Socket, egressDialTimeout)
	if err != nil {
		// Nothing to tell the client in its protocol without parsing it:
		// the connection closes, and init's log says why.
		f.warn("egress forwarder: cannot reach the egress proxy at %s: %v (is the run's host services process running? `runner apply` restarts it)", f.Socket, err)
		return
	}
	if !f.track(proxy) {
		proxy.Close()
		return
	}
	defer f.untrack(proxy)
	pipe(client, proxy)
}

// pipe copies a→b and b→a until both directions end. An EOF in one
// direction is passed on as a half-close (CloseWrite), so a client that
// sends its request and then shuts down writing still gets its answer. A
// read error in either direction closes both connections at once. A
// failed write (the other side stopped reading: the proxy refused an
// oversized request and closed) ends only that direction: what comes
// back still reaches the sender, and its further bytes are read and
// dropped for at most lingerTime, so that closing with them unread does
// not reset the connection and lose that answer.
func pipe(a, b net.Conn) {
	done := make(chan struct{}, 2)
	one := func(dst, src net.Conn) {
		defer func() { done <- struct{}{} }()
		buf := make([]byte, egressBuf)
		for {
			n, rerr := src.Read(buf)
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					now := time.Now()
					src.SetReadDeadline(now.Add(lingerTime))
					dst.SetReadDeadline(now.Add(lingerTime)) // the answer, if any, is on its way
					io.CopyBuffer(io.Discard, struct{ io.Reader }{src}, buf)
					return
				}
			}
			if rerr == io.EOF {
				if cw, ok := dst.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
					return
				}
			}
			if rerr != nil {
				a.Close()
				b.Close()
				return
			}
		}
	}
	go one(b, a)
	go one(a, b)
	<-done
	<-done
}

// lingerTime bounds how long pipe keeps reading from a side it can no
// longer write for.
const lingerTime = 2 * time.Second

// warn logs at most once a second, so a client retrying against a dead
// proxy does not flood the container's log.
func (f *EgressForwarder) warn(format string, a ...any) {
	f.mu.Lock()
	now := time.Now()
	if now.Sub(f.lastWarn) < time.Second {
		f.mu.Unlock()
		return
	}
	f.lastWarn = now
	f.mu.Unlock()
	f.Logf(format, a...)
}
