// Package proxy is the egress proxy: the only way out of an agent's
// container, which stays on network none. It serves one unix socket per
// agent (the agent's identity is the socket a connection arrived on,
// nothing the client sends), speaks HTTP CONNECT and absolute-URI HTTP,
// checks each destination against that agent's rules, resolves names
// itself and dials only the address it resolved, refusing the host's own,
// private and metadata addresses unless an IP entry names them. It does
// not terminate TLS itself; on CONNECT it reads the ClientHello to refuse a
// server name other than the CONNECT's host, and hands a tunnel toward a
// host that carries an injected credential to Config.Intercept
// (internal/egress/inject).
package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/runner-dev/runner/internal/names"

	"github.com/runner-dev/runner/internal/unixsock"
)

// Resolver resolves names; *net.Resolver is one. Tests give the proxy a
// resolver that maps test names to local servers.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Dialer opens connections to destinations; *net.Dialer is one.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// AgentConfig is one agent's socket and rules.
type AgentConfig struct {
	Socket string // the unix socket to serve; its directory must exist
	Rules  Checker
}

// Config configures a Server.
type Config struct {
	Agents     map[string]AgentConfig // by agent name
	Resolver   Resolver               // nil: net.DefaultResolver
	Dialer     Dialer                 // nil: a net.Dialer with Limits.DialTimeout
	Audit      func(Event)            // every connection's record; nil drops them
	AgentsFile string                 // how refusals name the agents file ("agents.hcl")
	// Intercept, when set, takes the CONNECT tunnels it asks for: those
	// toward a host that carries an injected credential.
	Intercept Interceptor
	Limits    Limits
}

// Server is the proxy for one run. Create it with New, run it with Serve.
type Server struct {
	cfg        Config
	agents     map[string]*agent
	agentsFile string

	foldMu sync.Mutex
	folded map[foldKey]*Event

	mu      sync.Mutex
	served  bool
	closing bool
}

// agent is one agent's socket, rules, open connections and counters.
type agent struct {
	name   string
	socket string
	ln     net.Listener

	mu    sync.Mutex // guards the fields below
	rules Checker
	gen   uint64 // bumped by UpdateRules
	conns map[*conn]struct{}
	stats agentStats
}

// New checks cfg. Nothing listens until Serve.
func New(cfg Config) (*Server, error) {
	cfg.Limits.setDefaults()
	if len(cfg.Agents) == 0 {
		return nil, errors.New("egress proxy: no agents")
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	if cfg.Dialer == nil {
		cfg.Dialer = &net.Dialer{Timeout: cfg.Limits.DialTimeout}
	}
	s := &Server{cfg: cfg, agents: map[string]*agent{}, agentsFile: cfg.AgentsFile, folded: map[foldKey]*Event{}}
	if s.agentsFile == "" {
		s.agentsFile = "agents.hcl"
	}
	if !ShowableFileName(s.agentsFile) {
		return nil, fmt.Errorf("egress proxy: agents file name %q is not shown to agents as is: use a plain file name", s.agentsFile)
	}
	sockets := map[string]string{}
	for name, a := range cfg.Agents {
		if err := names.Check("agent", name); err != nil {
			return nil, fmt.Errorf("egress proxy: %w", err)
		}
		if a.Rules == nil {
			return nil, fmt.Errorf("egress proxy: agent %q has no rules", name)
		}
		if a.Socket == "" || len(a.Socket) > 107 {
			return nil, fmt.Errorf("egress proxy: agent %q's socket path %q is empty or longer than the 107 bytes a unix socket allows: use a shorter directory", name, a.Socket)
		}
		if other, dup := sockets[a.Socket]; dup {
			return nil, fmt.Errorf("egress proxy: agents %q and %q share socket %s; each agent needs its own", other, name, a.Socket)
		}
		sockets[a.Socket] = name
		s.agents[name] = &agent{name: name, socket: a.Socket, rules: a.Rules, conns: map[*conn]struct{}{}}
	}
	return s, nil
}

// ShowableFileName says whether s may name the agents file in a refusal
// (which an agent and its model read): short, letters, digits, . - _ /.
func ShowableFileName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_' || c == '/') {
			return false
		}
	}
	return true
}

// Serve listens on every agent's socket and serves until ctx ends; then it
// closes every connection and returns. It may be called once.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	if s.served {
		s.mu.Unlock()
		return errors.New("egress proxy: Serve called twice")
	}
	s.served = true
	s.mu.Unlock()
	var opened []*agent
	for _, name := range s.names() {
		ag := s.agents[name]
		ln, err := listen(ag.socket)
		if err != nil {
			for _, o := range opened {
				o.ln.Close()
			}
			return fmt.Errorf("egress proxy: agent %q: %w", name, err)
		}
		ag.ln = ln
		opened = append(opened, ag)
	}
	var wg sync.WaitGroup
	for _, ag := range opened {
		wg.Go(func() { s.acceptLoop(ctx, ag, &wg) })
	}
	done := make(chan struct{})
	var flusher sync.WaitGroup
	flusher.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				s.flush()
			case <-done:
				return
			}
		}
	})
	<-ctx.Done()
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	for _, ag := range opened {
		ag.ln.Close()
		ag.mu.Lock()
		for cn := range ag.conns {
			cn.end("the proxy stopped")
		}
		ag.mu.Unlock()
	}
	wg.Wait()
	close(done)
	flusher.Wait() // no Audit call after Serve returns
	s.flush()
	return nil
}

func (s *Server) names() []string {
	out := make([]string, 0, len(s.agents))
	for n := range s.agents {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// listen serves a unix socket at path, mode 0666: the agent's container
// runs as a uid of its own, and the directory holding the socket (mounted
// into that agent's container only, inside a 0700 directory) is what keeps
// everyone else out. A socket left by a proxy that died is replaced; one
// that answers is not.
func listen(path string) (net.Listener, error) {
	return unixsock.Listen(path, 0o666)
}

func (s *Server) acceptLoop(ctx context.Context, ag *agent, wg *sync.WaitGroup) {
	var backoff time.Duration
	for {
		c, err := ag.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// Out of descriptors, say: wait, keep serving what is open.
			s.emit(Event{Agent: ag.name, Kind: "error", Reason: "accept: " + clean(err.Error())})
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return
			}
			continue
		}
		backoff = 0
		cn := &conn{client: c, ag: ag, start: time.Now()}
		if !s.admitConn(ag, cn) {
			wg.Go(func() { s.tooMany(ag, c) })
			continue
		}
		wg.Go(func() { s.handle(ctx, cn) })
	}
}

// admitConn counts cn against its agent's limit, if there is room.
func (s *Server) admitConn(ag *agent, cn *conn) bool {
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	ag.mu.Lock()
	defer ag.mu.Unlock()
	if closing || len(ag.conns) >= s.cfg.Limits.MaxConnsPerAgent {
		return false
	}
	ag.conns[cn] = struct{}{}
	return true
}

// tooMany answers a connection over the agent's limit and closes it; the
// short write deadline keeps a non-reading client from holding it.
func (s *Server) tooMany(ag *agent, c net.Conn) {
	r := tooMany(ag.name, s.cfg.Limits.MaxConnsPerAgent)
	c.SetWriteDeadline(time.Now().Add(time.Second))
	c.Write(r.response())
	c.Close()
	s.emit(Event{Agent: ag.name, Kind: r.kind, Reason: r.line})
}

// UpdateRules replaces agent's rules. New requests see them at once; open
// connections they no longer allow are closed.
func (s *Server) UpdateRules(agent string, rules Checker) error {
	ag, ok := s.agents[agent]
	if !ok {
		return fmt.Errorf("egress proxy: no agent %q", agent)
	}
	if rules == nil {
		return fmt.Errorf("egress proxy: nil rules for agent %q", agent)
	}
	ag.mu.Lock()
	ag.rules = rules
	ag.gen++
	var revoke []*conn
	for cn := range ag.conns {
		if cn.dest != nil && !stillAllowed(rules, cn.dest) {
			revoke = append(revoke, cn)
		}
	}
	ag.mu.Unlock()
	for _, cn := range revoke {
		cn.end("closed: the agent's egress rules changed and no longer allow it")
	}
	return nil
}

// current returns ag's rules and their generation.
func (ag *agent) current() (Checker, uint64) {
	ag.mu.Lock()
	defer ag.mu.Unlock()
	return ag.rules, ag.gen
}

// currentVerdict is what ag's rules say about req now (for a refusal after
// the rules changed under a request).
func (ag *agent) currentVerdict(req *request) Verdict {
	v := ag.rules.CheckName(req.host, req.port)
	if v.Allowed {
		// Allowed by name, refused by an address check: say no rule
		// allows the address.
		return Verdict{}
	}
	return v
}
