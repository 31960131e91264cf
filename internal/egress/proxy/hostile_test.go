package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// good is one legitimate HTTPS request through agent's socket; it fails the
// test if it does not succeed.
func good(t *testing.T, h *harness, s *servers, agent string) time.Duration {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := h.client(agent, s.tlsConfig(""))
	req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("https://www.example.com:%d/sum", s.tlsAddr.Port()), nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s's request: %v", agent, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s's request: %s", agent, resp.Status)
	}
	return time.Since(start)
}

func TestHostileClients(t *testing.T) {
	h, s, _ := world(t, Limits{HandshakeTimeout: 2 * time.Second})
	mallory := func() net.Conn { return h.dial("eng") }
	tlsPort := s.tlsAddr.Port()

	t.Run("garbage", func(t *testing.T) {
		for _, g := range []string{
			"\x00\x01\x02\xff\r\n\r\n", "GET\r\n\r\n", "CONNECT\r\n\r\n", "CONNECT a b c d\r\n\r\n",
			"CONNECT www.example.com HTTP/1.1\r\n\r\n", "CONNECT www.example.com:0 HTTP/1.1\r\n\r\n",
			"CONNECT www.example.com:99999 HTTP/1.1\r\n\r\n", "CONNECT user@www.example.com:443 HTTP/1.1\r\n\r\n",
			"GET /relative HTTP/1.1\r\nHost: x\r\n\r\n", "GET https://www.example.com/ HTTP/1.1\r\n\r\n",
			"GET http://www.example.com/ HTTP/2.0\r\n\r\n", "GET http://www.example.com/ HTTP/1.1\r\n folded\r\n\r\n",
			"GET http://www.example.com/ HTTP/1.1\nHost: x\n\n", "GET http://[::1/ HTTP/1.1\r\n\r\n",
			"GET http://127.1/ HTTP/1.1\r\n\r\n", "GET http://0x7f.1/ HTTP/1.1\r\n\r\n", "GET http://a..b/ HTTP/1.1\r\n\r\n",
			"GET  http://www.example.com/ HTTP/1.1\r\n\r\n", "G\x1bT http://www.example.com/ HTTP/1.1\r\n\r\n",
		} {
			c := mallory()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, g)
			b, _ := io.ReadAll(c)
			c.Close()
			if !strings.HasPrefix(string(b), "HTTP/1.1 400 ") {
				t.Errorf("%q: %q, want a 400", g, b)
			}
			if i := strings.Index(string(b), "\r\n\r\n"); i > 0 {
				checkLine(t, string(b[i+4:]), `agent "eng"`)
			}
		}
	})
	t.Run("oversized-headers", func(t *testing.T) {
		c := mallory()
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		go fmt.Fprintf(c, "GET http://plain.example.com/ HTTP/1.1\r\nX: %s\r\n\r\n", strings.Repeat("a", 1<<20))
		b := make([]byte, 4096)
		n, _ := io.ReadAtLeast(c, b, 12)
		if !strings.HasPrefix(string(b[:n]), "HTTP/1.1 431 ") {
			t.Fatalf("a 1 MiB header: %q", b[:n])
		}
	})
	t.Run("half-written-requests-held-open", func(t *testing.T) {
		var conns []net.Conn
		for i := 0; i < 100; i++ {
			c := mallory()
			io.WriteString(c, "CONNECT www.exam")
			conns = append(conns, c)
		}
		good(t, h, s, "other")
		// The handshake deadline closes every one of them.
		for _, c := range conns {
			if err := isClosed(c, 10*time.Second); err != nil {
				t.Fatalf("a half-written request: %v", err)
			}
			c.Close()
		}
	})
	// Of the CONNECTs to the denied name: sent, and answered (a refusal is
	// recorded before it is answered). A dial refused under load sends
	// nothing, so the log can only be held between the two.
	var deniedSent, deniedAnswered atomic.Int64
	t.Run("ten-thousand-connects", func(t *testing.T) {
		var wg sync.WaitGroup
		var answered atomic.Int64
		targets := []string{
			fmt.Sprintf("www.example.com:%d", tlsPort), fmt.Sprintf("unlisted.example.com:%d", tlsPort),
			fmt.Sprintf("denied.example.com:%d", tlsPort), "nowhere.example.com:443",
		}
		work := make(chan int)
		for w := 0; w < 32; w++ {
			wg.Go(func() {
				for i := range work {
					c, err := net.Dial("unix", h.sockets["eng"])
					if err != nil {
						continue
					}
					c.SetDeadline(time.Now().Add(10 * time.Second))
					target := targets[i%len(targets)]
					_, werr := fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\n\r\n", target)
					denied := strings.HasPrefix(target, "denied.")
					if werr == nil && denied {
						deniedSent.Add(1)
					}
					var b [12]byte
					if _, err := io.ReadFull(c, b[:]); err == nil {
						answered.Add(1)
						if denied {
							deniedAnswered.Add(1)
						}
					}
					c.Close()
				}
			})
		}
		for i := 0; i < 10000; i++ {
			work <- i
		}
		close(work)
		wg.Wait()
		if answered.Load() < 9000 {
			t.Errorf("only %d of 10000 CONNECTs were answered", answered.Load())
		}
		t.Logf("another agent's request right after 10000 CONNECTs took %s", good(t, h, s, "other"))
		good(t, h, s, "eng")
	})
	// Folding: the flood is not 10000 lines in the audit log.
	h.srv.flush()
	n := 0
	for _, e := range h.snapshot() {
		if e.Agent == "eng" {
			n++
		}
	}
	if n > 500 {
		t.Errorf("%d audit events for eng's flood; folding should keep it to a few per second", n)
	}
	var sum int
	for _, e := range h.snapshot() {
		if e.Agent == "eng" && e.Kind == "deny" && e.Host == "denied.example.com" {
			sum += e.Count
		}
	}
	if lo, hi := deniedAnswered.Load(), deniedSent.Load(); int64(sum) < lo || int64(sum) > hi || lo < 2000 {
		t.Errorf("folded denials of denied.example.com add up to %d, want between the %d answered and the %d sent (of 2500)", sum, lo, hi)
	}
}

func TestPerAgentConnectionCap(t *testing.T) {
	h, s, _ := world(t, Limits{MaxConnsPerAgent: 8, HandshakeTimeout: time.Minute})
	var held []net.Conn
	for i := 0; i < 8; i++ {
		c := h.dial("eng")
		io.WriteString(c, "CONNECT www.exa")
		held = append(held, c)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := h.dial("eng")
		c.SetDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(c)
		c.Close()
		if strings.HasPrefix(string(b), "HTTP/1.1 503 ") {
			checkLine(t, string(b[strings.Index(string(b), "\r\n\r\n")+4:]), `agent "eng" has 8 connections open, its limit`)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the 9th connection: %q, want a 503", b)
		}
	}
	if st := h.srv.Stats()["eng"]; st.Open != 8 {
		t.Errorf("Stats says %d open, want 8", st.Open)
	}
	good(t, h, s, "other")
	for _, c := range held {
		c.Close()
	}
	waitOpen(t, h, "eng", 0)
	good(t, h, s, "eng")
}

func waitOpen(t *testing.T, h *harness, agent string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for h.srv.Stats()[agent].Open != n {
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d connections open, want %d", agent, h.srv.Stats()[agent].Open, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
