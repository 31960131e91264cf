package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeRules stands in for internal/egress/rules in unit tests: entries
// are "host" (any port) or "host:port".
type fakeRules struct {
	allow, deny []string
	named       map[netip.AddrPort]string
}

func (r *fakeRules) CheckName(host string, port int) Verdict {
	for _, e := range r.deny {
		if e == host || e == hostPort(host, port) {
			return Verdict{Rule: e, Deny: true}
		}
	}
	for _, e := range r.allow {
		if e == host || e == hostPort(host, port) {
			return Verdict{Allowed: true, Rule: e}
		}
	}
	return Verdict{}
}

func (r *fakeRules) NamedAddr(ip netip.Addr, port int) (string, bool) {
	rule, ok := r.named[netip.AddrPortFrom(ip, uint16(port))]
	return rule, ok
}

// mapResolver resolves test names only: tests reach no DNS server.
type mapResolver map[string][]netip.Addr

func (m mapResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if a, ok := m[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// harness is a running proxy with its sockets and the events it emitted.
type harness struct {
	t       testing.TB
	srv     *Server
	sockets map[string]string

	mu     sync.Mutex
	events []Event
}

func newHarness(t testing.TB, agents map[string]*fakeRules, res mapResolver, lim Limits) *harness {
	t.Helper()
	dir := t.TempDir()
	h := &harness{t: t, sockets: map[string]string{}}
	cfg := Config{Agents: map[string]AgentConfig{}, Resolver: res, Limits: lim, Audit: func(e Event) {
		h.mu.Lock()
		h.events = append(h.events, e)
		h.mu.Unlock()
	}}
	for name, r := range agents {
		d := filepath.Join(dir, name)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		h.sockets[name] = filepath.Join(d, "proxy.sock")
		cfg.Agents[name] = AgentConfig{Socket: h.sockets[name], Rules: r}
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	// Ready once the socket is chmodded, which listen does after
	// listening; no probe connection that would count against a cap.
	for name, sock := range h.sockets {
		deadline := time.Now().Add(5 * time.Second)
		for {
			st, err := os.Lstat(sock)
			if err == nil && st.Mode().Perm() == 0o666 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("agent %s's socket never appeared: %v", name, err)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	return h
}

func (h *harness) dial(agent string) net.Conn {
	h.t.Helper()
	c, err := net.Dial("unix", h.sockets[agent])
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

// client is an HTTP client whose proxy is agent's socket, the way
// runner-agent's forwarder will present it in the container.
func (h *harness) client(agent string, roots *tls.Config) *http.Client {
	proxyURL, _ := url.Parse("http://proxy.invalid:3128")
	tr := &http.Transport{
		Proxy: http.ProxyURL(proxyURL),
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", h.sockets[agent])
		},
		TLSClientConfig:   roots,
		DisableKeepAlives: true,
	}
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

func (h *harness) snapshot() []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Event(nil), h.events...)
}

// waitEvent waits for an event that match accepts (events are emitted
// when a connection ends, which may be just after the client saw it end).
func (h *harness) waitEvent(what string, match func(Event) bool) Event {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, e := range h.snapshot() {
			if match(e) {
				return e
			}
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("no audit event %s; have %+v", what, h.snapshot())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rawRequest sends head on a new connection of agent and reads one
// response.
func (h *harness) rawRequest(agent, head string) (*http.Response, string) {
	h.t.Helper()
	c := h.dial(agent)
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, head); err != nil {
		h.t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		h.t.Fatalf("reading the answer to %q: %v", head, err)
	}
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// checkLine checks a refusal body: one line, naming the destination and the
// agent, with every part in want.
func checkLine(t *testing.T, body string, want ...string) {
	t.Helper()
	if strings.Count(body, "\n") != 1 || !strings.HasSuffix(body, "\n") {
		t.Fatalf("refusal body is not one line: %q", body)
	}
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("refusal %q does not say %q", body, w)
		}
	}
	for _, c := range body[:len(body)-1] {
		if c < ' ' || c == 0x7f {
			t.Errorf("refusal %q holds a control character", body)
		}
	}
}

// servers are the destinations tests reach: HTTP, HTTPS and a TCP echo
// server, all on 127.0.0.1.
type servers struct {
	plain, tls *httptest.Server
	echo       net.Listener
	plainAddr  netip.AddrPort
	tlsAddr    netip.AddrPort
	echoAddr   netip.AddrPort
}

func startServers(t testing.TB, h http.Handler) *servers {
	t.Helper()
	s := &servers{plain: httptest.NewUnstartedServer(h), tls: httptest.NewUnstartedServer(h)}
	// Hostile tests hang up mid-handshake on purpose.
	s.tls.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.plain.Start()
	s.tls.StartTLS()
	t.Cleanup(s.plain.Close)
	t.Cleanup(s.tls.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	s.echo = ln
	s.plainAddr = netip.MustParseAddrPort(s.plain.Listener.Addr().String())
	s.tlsAddr = netip.MustParseAddrPort(s.tls.Listener.Addr().String())
	s.echoAddr = netip.MustParseAddrPort(ln.Addr().String())
	return s
}

func (s *servers) tlsConfig(serverName string) *tls.Config {
	c := s.tls.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	c.ServerName = serverName
	return c
}

// connectTunnel opens a CONNECT tunnel for agent to target and returns the
// connection after the 200.
func (h *harness) connectTunnel(agent, target string) net.Conn {
	h.t.Helper()
	c := h.dial(agent)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	if err != nil {
		h.t.Fatalf("CONNECT %s: %v", target, err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		h.t.Fatalf("CONNECT %s: %s %q", target, resp.Status, b)
	}
	if br.Buffered() != 0 {
		h.t.Fatalf("CONNECT %s: bytes after the 200", target)
	}
	c.SetDeadline(time.Time{})
	return c
}

func isClosed(c net.Conn, within time.Duration) error {
	c.SetReadDeadline(time.Now().Add(within))
	var b [1]byte
	_, err := c.Read(b[:])
	if err == nil {
		return errors.New("read a byte")
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("still open after %s", within)
	}
	return nil
}
