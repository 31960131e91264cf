package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// tunnel copies both ways until both sides are done, counting bytes. The
// copies are io.Copy between the raw connections, so Linux splices
// (unix socket to TCP and back) without copying through user space. Each
// copy wakes every tick to count and to end a tunnel idle for
// IdleTimeout. With downEnds, the destination closing ends the whole
// connection (plain HTTP: one request per connection).
func (s *Server) tunnel(cn *conn, up net.Conn, req *request, downEnds bool) {
	cn.touch()
	var wg sync.WaitGroup
	wg.Go(func() {
		s.pump(cn, up, cn.client, &cn.bytesUp, req, true)
	})
	s.pump(cn, cn.client, up, &cn.bytesDown, req, false)
	if downEnds {
		cn.end("")
	}
	wg.Wait()
	cn.end("")
}

type closeWriter interface{ CloseWrite() error }

func (s *Server) pump(cn *conn, dst, src net.Conn, n *atomic.Int64, req *request, upward bool) {
	idle := s.cfg.Limits.IdleTimeout
	for {
		src.SetReadDeadline(time.Now().Add(tick))
		k, err := io.Copy(dst, src)
		if k > 0 {
			n.Add(k)
			cn.touch()
			if upward {
				s.addBytes(cn.ag, req.host, req.port, k, 0)
			} else {
				s.addBytes(cn.ag, req.host, req.port, 0, k)
			}
		}
		switch {
		case err == nil: // src said EOF: pass it on, the other way may go on
			if cw, ok := dst.(closeWriter); ok {
				cw.CloseWrite()
			} else {
				cn.end("")
			}
			return
		case errors.Is(err, os.ErrDeadlineExceeded):
			if time.Since(time.Unix(0, cn.last.Load())) >= idle {
				cn.end("closed: idle for " + idle.String())
				return
			}
		default:
			cn.end("")
			return
		}
	}
}
