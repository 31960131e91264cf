package shim

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeProxy is a unix listener standing in for the host's egress proxy.
type fakeProxy struct {
	ln    net.Listener
	conns chan net.Conn
}

func newFakeProxy(t *testing.T) *fakeProxy {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "proxy.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	p := &fakeProxy{ln: ln, conns: make(chan net.Conn, 1024)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.conns <- c
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return p
}

func (p *fakeProxy) socket() string { return p.ln.Addr().String() }

func (p *fakeProxy) next(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-p.conns:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("the forwarder did not connect to the proxy socket")
		return nil
	}
}

func startForwarder(t *testing.T, socket string, max int) (*EgressForwarder, *logBuf) {
	t.Helper()
	logs := &logBuf{}
	f := &EgressForwarder{Listen: "127.0.0.1:0", Socket: socket, MaxConns: max, Logf: logs.printf}
	ctx, cancel := context.WithCancel(context.Background())
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); f.Close() })
	return f, logs
}

type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) printf(format string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(strings.TrimSpace(fmt.Sprintf(format, a...)) + "\n")
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func dialFwd(t *testing.T, f *EgressForwarder) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", f.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

func deadline(c net.Conn) { c.SetDeadline(time.Now().Add(10 * time.Second)) }

// Bytes arrive unchanged both ways, in any amount, and a client's
// half-close reaches the proxy as EOF while the answer still comes back.
func TestEgressForwarderBytesAndHalfClose(t *testing.T) {
	p := newFakeProxy(t)
	f, _ := startForwarder(t, p.socket(), 4)
	c := dialFwd(t, f)
	s := p.next(t)
	deadline(c)
	deadline(s)

	req := make([]byte, 1<<20) // far more than the copy buffer
	rand.Read(req)
	go func() {
		c.Write(req)
		c.CloseWrite()
	}()
	got, err := io.ReadAll(s) // ends only if the half-close was passed on
	if err != nil || !bytes.Equal(got, req) {
		t.Fatalf("proxy received %d bytes (err %v), want the %d sent, unchanged", len(got), err, len(req))
	}
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	s.Write(resp)
	s.(*net.UnixConn).CloseWrite()
	back, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(back, resp) {
		t.Fatalf("client received %q (err %v), want %q", back, err, resp)
	}
}

// The proxy ending its side first (a refusal, a closed tunnel) reaches
// the client as EOF, after every byte it wrote.
func TestEgressForwarderProxyClosesFirst(t *testing.T) {
	p := newFakeProxy(t)
	f, _ := startForwarder(t, p.socket(), 4)
	c := dialFwd(t, f)
	s := p.next(t)
	deadline(c)
	c.Write([]byte("CONNECT denied.example:443 HTTP/1.1\r\n\r\n"))
	refusal := "HTTP/1.1 403 Forbidden\r\n\r\nrunner egress: denied\n"
	s.Write([]byte(refusal))
	s.Close()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != refusal {
		t.Fatalf("client got %q, %v; want %q then EOF", got, err, refusal)
	}
}

// A refusal the proxy sends while the client is still writing (an
// oversized head: the proxy reads 8 KiB, answers 431 and closes) reaches
// the client, though the rest of what it writes has nowhere to go.
func TestEgressForwarderRefusalWhileClientStillWrites(t *testing.T) {
	p := newFakeProxy(t)
	f, _ := startForwarder(t, p.socket(), 4)
	for i := range 20 { // the race it guards against is in the timing
		c := dialFwd(t, f)
		s := p.next(t)
		deadline(c)
		deadline(s)
		go c.Write(make([]byte, 4<<20))
		io.ReadFull(s, make([]byte, 8<<10))
		refusal := "HTTP/1.1 431 Request Header Fields Too Large\r\n\r\ntoo long\n"
		s.Write([]byte(refusal))
		s.Close()
		got, _ := io.ReadAll(c)
		if string(got) != refusal {
			t.Fatalf("try %d: the client got %q, want the refusal %q", i, got, refusal)
		}
		c.Close()
	}
}

// Connections beyond the cap wait, without being forwarded, until one
// ends; none is lost.
func TestEgressForwarderCap(t *testing.T) {
	p := newFakeProxy(t)
	f, _ := startForwarder(t, p.socket(), 2)
	c1, c2 := dialFwd(t, f), dialFwd(t, f)
	s1, s2 := p.next(t), p.next(t)
	c3 := dialFwd(t, f) // the kernel accepts it; the forwarder must not yet
	select {
	case <-p.conns:
		t.Fatal("a third connection was forwarded with a cap of 2")
	case <-time.After(300 * time.Millisecond):
	}
	// Which proxy side belongs to c1 is the forwarder's accept order, so
	// find it: c1's byte arrives on it.
	deadline(s1)
	deadline(s2)
	got := make(chan net.Conn, 2)
	for _, sc := range []net.Conn{s1, s2} {
		go func() {
			if _, err := io.ReadFull(sc, make([]byte, 1)); err == nil {
				got <- sc
			}
		}()
	}
	c1.Write([]byte("1"))
	var mine net.Conn
	select {
	case mine = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("c1's byte reached neither proxy connection")
	}
	c1.Close()
	mine.Close()
	_ = c2
	s3 := p.next(t) // the freed slot goes to the waiting connection
	deadline(c3)
	deadline(s3)
	c3.Write([]byte("x"))
	b := make([]byte, 1)
	if _, err := io.ReadFull(s3, b); err != nil || b[0] != 'x' {
		t.Fatalf("third connection after a slot freed: %q %v", b, err)
	}
}

// Without a proxy socket the client's connection is closed (no hang) and
// the log says why, once, however often the client retries.
func TestEgressForwarderNoProxy(t *testing.T) {
	f, logs := startForwarder(t, filepath.Join(t.TempDir(), "absent.sock"), 4)
	for range 5 {
		c := dialFwd(t, f)
		deadline(c)
		if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
			t.Fatalf("read %d bytes, err %v: want the connection closed", n, err)
		}
	}
	out := logs.String()
	if strings.Count(out, "cannot reach the egress proxy") != 1 || !strings.Contains(out, "absent.sock") {
		t.Errorf("log = %q, want one line naming the socket", out)
	}
}

// Close ends every forwarded connection and stops listening.
func TestEgressForwarderClose(t *testing.T) {
	p := newFakeProxy(t)
	f, _ := startForwarder(t, p.socket(), 4)
	c := dialFwd(t, f)
	s := p.next(t)
	deadline(c)
	deadline(s)
	done := make(chan struct{})
	go func() { f.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return with a connection open")
	}
	if _, err := io.ReadAll(s); err != nil {
		t.Errorf("proxy side: %v", err)
	}
	if _, err := io.ReadAll(c); err != nil && !isReset(err) {
		t.Errorf("client side: %v", err)
	}
	if _, err := net.Dial("tcp", f.Addr().String()); err == nil {
		t.Error("still listening after Close")
	}
}

func isReset(err error) bool { return strings.Contains(err.Error(), "reset") }
