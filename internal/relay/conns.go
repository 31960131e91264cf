package relay

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"golang.org/x/sys/unix"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/runner-dev/runner/internal/unixsock"
)

// socket is one identity's listening socket. Pre-login connections are
// counted per socket, so a flood on one never takes another's slots.
type socket struct {
	id   string // the only identity that may log in here
	path string
	mode os.FileMode
	ln   net.Listener

	prelogin int // connections still in hello; guarded by Server.connMu
}

// listenAll opens every identity's socket, in name order; on an error it
// closes what it opened.
func (s *Server) listenAll() ([]*socket, error) {
	var socks []*socket
	for _, c := range s.creds {
		mode := os.FileMode(0o666)
		if c.id == Operator {
			mode = 0o600
		}
		ln, err := listen(s.cfg.Sockets[c.id], mode)
		if err != nil {
			for _, so := range socks {
				so.ln.Close()
			}
			return nil, err
		}
		socks = append(socks, &socket{id: c.id, path: s.cfg.Sockets[c.id], mode: mode, ln: ln})
	}
	return socks, nil
}

func listen(sock string, mode os.FileMode) (net.Listener, error) {
	ln, err := unixsock.Listen(sock, mode)
	if inUse, ok := errors.AsType[*unixsock.InUseError](err); ok {
		return nil, fmt.Errorf("relay: another relay is listening on %s: stop it first", inUse.Path)
	}
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	return ln, nil
}

func (s *Server) acceptLoop(ctx context.Context, so *socket, wg *sync.WaitGroup) {
	var backoff time.Duration
	for {
		c, err := so.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// Out of file descriptors, say: wait and retry rather than stop
			// serving the connections that are already open.
			s.auditNoisy("accept_error", "", so.id, err.Error())
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return
			}
			continue
		}
		backoff = 0
		if !s.track(so, c) {
			c.Close()
			s.auditNoisy("conn_limit", "", so.id, fmt.Sprintf("closed a new connection on %s's socket: %d are still in hello there, the limit", so.id, s.cfg.MaxPreLogin))
			continue
		}
		wg.Go(func() { s.handle(ctx, so, c) })
	}
}

// track counts c as one of so's pre-login connections, if there is room.
func (s *Server) track(so *socket, c net.Conn) bool {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.closing || so.prelogin >= s.cfg.MaxPreLogin {
		return false
	}
	s.conns[c] = struct{}{}
	so.prelogin++
	return true
}

// loggedIn frees c's pre-login slot on so: hello is over, either way.
func (s *Server) loggedIn(so *socket) {
	s.connMu.Lock()
	so.prelogin--
	s.connMu.Unlock()
}

func (s *Server) untrack(c net.Conn) {
	c.Close()
	s.connMu.Lock()
	delete(s.conns, c)
	s.connMu.Unlock()
}

func (s *Server) closeAll() {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	s.closing = true
	for c := range s.conns {
		c.Close()
	}
}

// claim counts a connection against id's limit.
func (s *Server) claim(id string) bool {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.perIdent[id] >= maxConnsPerIdentity {
		return false
	}
	s.perIdent[id]++
	return true
}

func (s *Server) unclaim(id string) {
	s.connMu.Lock()
	s.perIdent[id]--
	s.connMu.Unlock()
}

// errIdle marks a connection that sent nothing for IdleTimeout: normal, not
// worth an audit line.
var errIdle = errors.New("idle")

// readFrame waits up to idle (0: forever) for a frame to start, then up to
// FrameTimeout for the rest of it, so a half-written frame cannot hold the
// connection.
func (s *Server) readFrame(c net.Conn, r *bufio.Reader, idle time.Duration) ([]byte, error) {
	var deadline time.Time
	if idle > 0 {
		deadline = time.Now().Add(idle)
	}
	c.SetReadDeadline(deadline)
	if _, err := r.Peek(1); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, errIdle
		}
		return nil, err
	}
	c.SetReadDeadline(time.Now().Add(s.cfg.FrameTimeout))
	return readFrame(r, s.maxFrame)
}

// readFailed ends a connection whose input failed: a clean close or idling is
// normal, anything else is audited and, where the stream still works, told.
func (s *Server) readFailed(c net.Conn, id string, err error) {
	if errors.Is(err, io.EOF) || errors.Is(err, errIdle) || errors.Is(err, net.ErrClosed) {
		return
	}
	s.auditNoisy("bad_request", id, "", err.Error())
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) {
		return
	}
	s.write(c, errReply(CodeBadRequest, "%v; closing the connection", err))
}

// peerCred says which process is on the other end, as the kernel reports it.
func peerCred(c net.Conn) string {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return "peer unknown"
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return "peer unknown"
	}
	var cred *unix.Ucred
	raw.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if err != nil || cred == nil {
		return "peer unknown"
	}
	return fmt.Sprintf("peer pid=%d uid=%d gid=%d", cred.Pid, cred.Uid, cred.Gid)
}
