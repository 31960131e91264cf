// Package inject puts an agent's real credentials on the wire: for the
// hosts a secret is bound to, and only those, the egress proxy hands the
// CONNECT tunnel here. It terminates the agent's TLS with a certificate of
// the run's CA, opens TLS to the destination verified against the host's
// roots (always), and forwards HTTP/1.1 requests, replacing the bound
// header's value when, and only when, it is exactly this agent's stand-in.
// The stand-in anywhere else, and any other value, passes unchanged.
package inject

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"

	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/runner-dev/runner/internal/egress/rules"
)

// Binding is one secret of one agent.
type Binding struct {
	Name    string       // the secret's name, for the audit log
	Hosts   *rules.Rules // where it is sent
	Header  string       // canonical header name
	Scheme  string       // "" (bare value), "Bearer" or "token"
	StandIn string
	Value   string
}

// Event is one injection, for the audit log: never the value.
type Event struct {
	Agent, Secret, Host string
	Port                int
}

// Injector serves intercepted tunnels. Its bindings are replaced in place
// on a rotation or rules change (SetBindings).
type Injector struct {
	ca *CA
	// roots verify destinations; nil is the host's system roots. Only a
	// test build sets another pool (see runner's runnertest files).
	roots *x509.CertPool
	audit func(Event)
	idle  time.Duration

	mu       sync.RWMutex
	bindings map[string][]Binding // by agent
	// seen folds audit events: one per agent, secret and host per process.
	seen map[Event]bool
}

// Options configure an Injector.
type Options struct {
	CA *CA
	// Roots, when set, replaces the system roots for verifying
	// destinations. Never set outside tests.
	Roots *x509.CertPool
	Audit func(Event)
	// Idle ends an intercepted connection idle this long (default 5m).
	Idle time.Duration
}

// New returns an Injector with no bindings.
func New(o Options) *Injector {
	if o.Idle == 0 {
		o.Idle = 5 * time.Minute
	}
	return &Injector{ca: o.CA, roots: o.Roots, audit: o.Audit, idle: o.Idle, bindings: map[string][]Binding{}, seen: map[Event]bool{}}
}

// SetBindings replaces every agent's bindings: the next request uses them.
func (in *Injector) SetBindings(b map[string][]Binding) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.bindings = b
}

func (in *Injector) forHost(agent, host string, port int) []Binding {
	in.mu.RLock()
	defer in.mu.RUnlock()
	var out []Binding
	for _, b := range in.bindings[agent] {
		if b.Hosts.CheckName(host, port).Allowed {
			out = append(out, b)
		}
	}
	return out
}

// Intercepts says whether any of agent's secrets is bound to host:port.
func (in *Injector) Intercepts(agent, host string, port int) bool {
	return len(in.forHost(agent, host, port)) > 0
}

// Serve terminates the agent's TLS and forwards its requests to the
// destination over verified TLS.
func (in *Injector) Serve(ctx context.Context, agent, host string, port int, client, up net.Conn) {
	leaf, err := in.ca.Leaf(host)
	if err != nil {
		return
	}
	ctls := tls.Server(client, &tls.Config{
		Certificates: []tls.Certificate{*leaf},
		NextProtos:   []string{"http/1.1"}, // one request at a time, so each is seen whole
		MinVersion:   tls.VersionTLS12,
	})
	defer ctls.Close()
	ctls.SetDeadline(time.Now().Add(30 * time.Second))
	if err := ctls.HandshakeContext(ctx); err != nil {
		return
	}
	ctls.SetDeadline(time.Time{})
	cr := bufio.NewReader(ctls)

	utls := tls.Client(up, &tls.Config{ServerName: host, RootCAs: in.roots, NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12})
	defer utls.Close()
	utls.SetDeadline(time.Now().Add(30 * time.Second))
	if err := utls.HandshakeContext(ctx); err != nil {
		in.answerAll(ctls, cr, http.StatusBadGateway, fmt.Sprintf("runner egress: TLS to %s:%d failed, so the request was not sent: %s. The proxy verifies the destination's certificate against the host's trusted roots and sends the agent's credential only to a verified %s.", host, port, clean(err.Error()), host))
		return
	}
	utls.SetDeadline(time.Time{})
	ur := bufio.NewReader(utls)
	for {
		ctls.SetReadDeadline(time.Now().Add(in.idle))
		req, err := http.ReadRequest(cr)
		if err != nil {
			return
		}
		ctls.SetReadDeadline(time.Time{})
		if h := hostOnly(req.Host, port); h != host {
			writeText(ctls, http.StatusMisdirectedRequest, fmt.Sprintf("runner egress: request for Host %q inside a tunnel to %s; the credential is bound to %s. Send each host its own CONNECT.", clean(req.Host), host, host))
			return
		}
		if req.Header.Get("Upgrade") != "" {
			writeText(ctls, http.StatusNotImplemented, fmt.Sprintf("runner egress: protocol upgrades (%s) are not forwarded toward %s, which carries an injected credential.", clean(req.Header.Get("Upgrade")), host))
			return
		}
		if strings.EqualFold(req.Header.Get("Expect"), "100-continue") {
			// Answered here: the body is forwarded as it is read, and the
			// client would wait for a 100 the destination cannot send yet.
			req.Header.Del("Expect")
			io.WriteString(ctls, "HTTP/1.1 100 Continue\r\n\r\n")
		}
		if _, ok := req.Header["User-Agent"]; !ok {
			req.Header["User-Agent"] = []string{} // Write would add Go's
		}
		in.rewrite(agent, host, port, req)
		if err := req.Write(utls); err != nil {
			writeText(ctls, http.StatusBadGateway, "runner egress: sending the request to "+host+" failed: "+clean(err.Error()))
			return
		}
		resp, err := http.ReadResponse(ur, req)
		if err != nil {
			writeText(ctls, http.StatusBadGateway, "runner egress: "+host+" sent no valid response: "+clean(err.Error()))
			return
		}
		err = resp.Write(ctls)
		resp.Body.Close()
		if err != nil || resp.Close || req.Close {
			return
		}
	}
}

// rewrite swaps each bound header that holds exactly the stand-in (with
// the scheme, when there is one) for the real value.
func (in *Injector) rewrite(agent, host string, port int, req *http.Request) {
	for _, b := range in.forHost(agent, host, port) {
		vals := req.Header.Values(b.Header)
		if len(vals) != 1 {
			continue // absent, or repeated: not the shape a client sends a key in
		}
		v := vals[0]
		want, real := b.StandIn, b.Value
		if b.Scheme != "" {
			sc, tok, ok := strings.Cut(v, " ")
			if !ok || !strings.EqualFold(sc, b.Scheme) {
				continue
			}
			v, want, real = tok, b.StandIn, sc+" "+b.Value
		}
		if v != want {
			continue
		}
		req.Header.Set(b.Header, real)
		in.note(Event{Agent: agent, Secret: b.Name, Host: host, Port: port})
	}
}

func (in *Injector) note(e Event) {
	if in.audit == nil {
		return
	}
	in.mu.Lock()
	first := !in.seen[e]
	in.seen[e] = true
	in.mu.Unlock()
	if first {
		in.audit(e)
	}
}

// answerAll answers the client's requests with status until it stops.
func (in *Injector) answerAll(c net.Conn, br *bufio.Reader, status int, msg string) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	io.Copy(io.Discard, io.LimitReader(req.Body, 1<<20))
	writeText(c, status, msg)
}

func writeText(w io.Writer, status int, msg string) {
	body := msg + "\n"
	fmt.Fprintf(w, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		status, http.StatusText(status), len(body), body)
}

// hostOnly is the Host header's name, lower case, without the port when it
// is the tunnel's.
func hostOnly(h string, port int) string {
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	if name, p, err := net.SplitHostPort(h); err == nil {
		if p != strconv.Itoa(port) {
			return h
		}
		return name
	}
	return h
}

// clean keeps a message to printable ASCII on one line: it may quote what
// the agent or the destination sent.
func clean(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 0x20 && r < 0x7f {
			b.WriteRune(r)
		} else {
			b.WriteByte('?')
		}
		if b.Len() > 300 {
			b.WriteString("...")
			break
		}
	}
	return b.String()
}
