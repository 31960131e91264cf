package shim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Init serves `runner-agent stream` itself, from a control connection of
// the server's own (never the one delivery and supervision use: the
// snapshot's reply carries pane text, which the agent controls and which
// can hold a line ending the reply early; see TestStreamForgedReply), so
// that the recorder's stream is one process in the container (the
// exec'd runner-agent stream, relaying bytes) rather than that and a tmux
// client of its own. The stream asks on StreamSocketName, next to the tmux
// socket (in the 0700 directory), with one line
//
//	stream HISTORY\n
//
// (HISTORY as for --history) and gets streamHello, then the pane's
// snapshot (capture-pane -p -e on that connection) and everything
// the pane prints after it, as raw bytes: tmux answers in order, so the
// %output that follows the snapshot's answer is new. The stream ends when
// the connection to tmux does (tmux exited: the stream asks again and gets
// a fresh snapshot), or when its reader falls more than streamMaxQueue
// behind. Without init's server (an older init, a test), or if it ends
// before streamHello, `runner-agent stream` runs its own control client
// as before. At most streamMaxConns connections are served at once (each
// may queue streamMaxQueue); another is closed at once, and its stream
// runs its own client.

// StreamSocketName is the stream server's socket, in the tmux socket's directory.
const StreamSocketName = "stream.sock"

const (
	streamHello    = "runner-agent stream-server 1\n"
	streamMaxQueue = 32 << 20
	streamMaxConns = 4
)

// StreamServer is init's side (see above).
type StreamServer struct {
	Ctl  *Control
	Pane string // the agent pane, %N
	Path string // the socket
	Logf func(format string, a ...any)

	mu    sync.Mutex
	subs  map[*streamSub]struct{} // past their snapshot: they get %output
	ln    net.Listener
	slots chan struct{} // one per connection served
}

// Listen starts serving; the Control's OnOutput and OnLost must be the
// server's (Output, Lost).
func (s *StreamServer) Listen(ctx context.Context) error {
	os.Remove(s.Path)
	ln, err := net.Listen("unix", s.Path)
	if err != nil {
		return err
	}
	os.Chmod(s.Path, 0o600)
	s.ln = ln
	s.slots = make(chan struct{}, streamMaxConns)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case s.slots <- struct{}{}:
				go s.serve(ctx, c)
			default:
				c.Close() // too many: this stream runs its own client
			}
		}
	}()
	return nil
}

// Close stops serving and ends every stream.
func (s *StreamServer) Close() {
	if s.ln != nil {
		s.ln.Close()
	}
	s.Lost()
}

func (s *StreamServer) serve(ctx context.Context, c net.Conn) {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	req, err := bufio.NewReaderSize(io.LimitReader(c, 64), 64).ReadString('\n')
	c.SetReadDeadline(time.Time{})
	f := strings.Fields(req)
	history, herr := 0, errors.New("bad request")
	if err == nil && len(f) == 2 && f[0] == "stream" {
		history, herr = strconv.Atoi(f[1])
	}
	if herr != nil {
		c.Close()
		<-s.slots
		return
	}
	sub := &streamSub{conn: c}
	sub.cond = sync.NewCond(&sub.mu)
	go func() {
		sub.write()
		<-s.slots
	}()
	go func() {
		// The stream writes nothing more: EOF means it went away, so
		// its slot is freed even while the pane prints nothing.
		io.Copy(io.Discard, c)
		sub.close()
	}()
	start := "-"
	switch {
	case history == 0:
		start = "0"
	case history > 0:
		start = "-" + strconv.Itoa(history)
	}
	hook := &snapshotHook{srv: s, sub: sub}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := s.Ctl.RunHook(cctx, hook, "capture-pane", "-p", "-e", "-S", start, "-t", s.Pane); err != nil {
		sub.close() // before the hello: the stream falls back; after: it ends
	}
}

// Output is the Control's OnOutput: "%PANE VALUE" from a %output line.
func (s *StreamServer) Output(rest string) {
	pane, v, ok := strings.Cut(rest, " ")
	if !ok || pane != s.Pane {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.subs) == 0 {
		return
	}
	b := decodeOctal(v)
	for sub := range s.subs {
		if !sub.push(b) {
			delete(s.subs, sub)
		}
	}
}

// Lost is the Control's OnLost: output may have been missed, so every
// stream ends (and asks again).
func (s *StreamServer) Lost() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sub := range s.subs {
		sub.close()
		delete(s.subs, sub)
	}
}

// snapshotHook turns the answer to capture-pane into the snapshot's bytes
// (lines ended by \r\n, trailing blank lines dropped, as Tmux.Stream
// writes it) and, at its end, makes the stream a receiver of %output.
type snapshotHook struct {
	srv    *StreamServer
	sub    *streamSub
	hello  bool
	blanks int
}

func (h *snapshotHook) greet() {
	if !h.hello {
		h.hello = true
		h.sub.push([]byte(streamHello))
	}
}

func (h *snapshotHook) Line(l string) {
	h.greet()
	if l == "" {
		h.blanks++
		return
	}
	b := make([]byte, 0, 2*h.blanks+len(l)+2)
	for ; h.blanks > 0; h.blanks-- {
		b = append(b, "\r\n"...)
	}
	b = append(append(b, l...), "\r\n"...)
	h.sub.push(b)
}

func (h *snapshotHook) End(failed bool) {
	if failed {
		return // the stream's RunHook fails and closes it
	}
	h.greet()
	h.srv.mu.Lock()
	defer h.srv.mu.Unlock()
	if h.srv.subs == nil {
		h.srv.subs = map[*streamSub]struct{}{}
	}
	h.srv.subs[h.sub] = struct{}{}
}

// streamSub is one stream's connection and what is queued for it, so that
// a slow reader never holds up the control connection.
type streamSub struct {
	conn   net.Conn
	mu     sync.Mutex
	cond   *sync.Cond
	queue  [][]byte
	size   int
	closed bool
}

// push queues b; false (and the stream closed) if it is too far behind.
func (s *streamSub) push(b []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.size+len(b) > streamMaxQueue {
		s.closed = true
		s.conn.Close()
		s.cond.Signal()
		return false
	}
	s.queue = append(s.queue, b)
	s.size += len(b)
	s.cond.Signal()
	return true
}

// close ends the stream once what is queued is written.
func (s *streamSub) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.cond.Signal()
}

func (s *streamSub) write() {
	defer s.conn.Close()
	for {
		s.mu.Lock()
		for len(s.queue) == 0 && !s.closed {
			s.cond.Wait()
		}
		q, closed := s.queue, s.closed
		s.queue, s.size = nil, 0
		s.mu.Unlock()
		bufs := net.Buffers(q)
		if _, err := bufs.WriteTo(s.conn); err != nil {
			s.mu.Lock()
			s.closed = true
			s.mu.Unlock()
			return
		}
		if closed {
			return
		}
	}
}

// decodeOctal decodes a %output value (\ooo escapes).
func decodeOctal(v string) []byte {
	out := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+3 < len(v) {
			if b, ok := octal([]byte(v[i+1 : i+4])); ok {
				out = append(out, b)
				i += 3
				continue
			}
		}
		out = append(out, v[i])
	}
	return out
}

// streamFromInit is `runner-agent stream` through init's server: ok false
// if there is none (or it did not answer), and nothing was written.
func streamFromInit(ctx context.Context, socket string, o StreamOptions) (ok bool, err error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", filepath.Join(filepath.Dir(socket), StreamSocketName))
	if err != nil {
		return false, nil
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if _, err := fmt.Fprintf(c, "stream %d\n", o.History); err != nil {
		return false, nil
	}
	br := bufio.NewReaderSize(c, 64<<10)
	hello, err := br.ReadString('\n')
	if err != nil || hello != streamHello {
		return false, nil
	}
	if _, err := io.WriteString(o.Out, o.Header); err != nil {
		return true, err
	}
	_, err = br.WriteTo(o.Out)
	if ctx.Err() != nil {
		return true, ctx.Err()
	}
	var ne *net.OpError
	if errors.As(err, &ne) && ne.Op == "read" {
		err = nil // init closed it: tmux went away
	}
	return true, err
}
