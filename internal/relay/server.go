// Package relay is the per-run message relay: agents and the operator connect
// to one unix socket, authenticate with a per-identity credential, and send
// each other messages that the relay routes by the run's ACL, stores durably,
// and delivers in order until the recipient acknowledges them. It also keeps
// the run's check-in schedule and writes every decision to the audit log.
// The wire protocol is described in PROTOCOL.md.
package relay

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/runner-dev/runner/internal/audit"
	"github.com/runner-dev/runner/internal/names"
)

// Reserved identities.
const (
	// Operator is the human running the run: it may send to anyone and send
	// briefs.
	Operator = "operator"
	// Runner is the sender of check-ins. No credential may claim it.
	Runner = "runner"
)

// Error codes in "error" replies.
const (
	CodeBadRequest         = "bad_request"          // malformed frame; the connection is closed
	CodeUnauthorized       = "unauthorized"         // the hello token matched no identity; closed
	CodeTooManyConnections = "too_many_connections" // this identity has too many open; closed
	CodeForbidden          = "forbidden"            // the ACL does not allow it
	CodeUnknownRecipient   = "unknown_recipient"    // no such identity in the run
	CodeInvalid            = "invalid"              // a field's value is not acceptable
	CodeQueueFull          = "queue_full"           // the recipient has QueueLimit undelivered messages
	CodeRateLimited        = "rate_limited"         // over the identity's rate; retry later
	CodeTooManySchedules   = "too_many_schedules"   // too many pending self-scheduled check-ins
	CodeUnavailable        = "unavailable"          // the relay could not store the request
)

// Bounds that need no configuration.
const (
	helloMaxFrame       = 1024 // hello is small; pre-auth connections get little memory
	maxConnsPerIdentity = 16   // so one agent cannot take every connection slot
	maxSchedules        = 100  // pending self-scheduled check-ins per identity
	maxScheduleAfter    = 7 * 24 * time.Hour
	minCheckinEvery     = time.Second
	inboxSize           = 50   // delivered messages kept per recipient for inbox
	inboxDefault        = 20   // what inbox returns when n is not given
	seenPerSender       = 1024 // client_ids remembered per sender for dedupe
	maxClientID         = 64
	compactAt           = 1 << 20 // journal bytes before compaction is considered
	maxMaxMessage       = 1 << 20
	maxQueueLimit       = 100000
)

// Rate is a token bucket: PerSecond tokens are added each second, up to Burst.
type Rate struct {
	PerSecond float64
	Burst     int
}

// Checkin is a declared check-in for Agent, with exactly one trigger:
// Message is delivered every Every, counted from relay start; or, with
// AfterIdle, whenever Agent's shim reports (idle request) that its pane has
// printed nothing for that long.
type Checkin struct {
	Agent     string
	Every     time.Duration
	AfterIdle time.Duration `json:",omitempty"`
	Message   string
}

// idleSeconds is an after_idle time in the whole seconds the idle request
// speaks: rounded up, so a check-in never fires early.
func idleSeconds(d time.Duration) int {
	return int((d + time.Second - 1) / time.Second)
}

// Config is everything a relay needs. Zero values take the documented
// defaults.
type Config struct {
	Run string
	// SocketPath is the unix socket to create, mode 0666: the directory the
	// caller puts it in decides who can reach it, the credential who gets in.
	SocketPath string
	// StateDir holds the journal and a lock (created 0700). It must not be
	// reachable from containers.
	StateDir string
	// Credentials maps identity to secret (hex, at least 128 bits; see
	// GenerateCredential). Operator is the operator's identity.
	Credentials map[string]string
	// ACL maps identity to the names it may send to: exact names or
	// path.Match patterns ("eng-*"). Operator may send to anyone.
	ACL        map[string][]string
	Checkins   []Checkin
	MaxMessage int        // body bytes; default 16 KiB
	QueueLimit int        // undelivered messages per recipient; default 1000
	RateLimit  Rate       // requests per identity; default 20/s, burst 40
	Audit      *audit.Log // required
	Now        func() time.Time

	MaxConns     int           // open connections; default 512, more are closed at once
	HelloTimeout time.Duration // to send hello after connecting; default 2s
	IdleTimeout  time.Duration // between requests; default 10m (subscribers have none)
	FrameTimeout time.Duration // for the rest of a frame once it started; default 5s
	WriteTimeout time.Duration // for the peer to take one frame; default 5s
	AckTimeout   time.Duration // for a subscriber to ack a delivery; default 2m
}

func (c *Config) setDefaults() {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.HelloTimeout, 2*time.Second)
	def(&c.IdleTimeout, 10*time.Minute)
	def(&c.FrameTimeout, 5*time.Second)
	def(&c.WriteTimeout, 5*time.Second)
	def(&c.AckTimeout, 2*time.Minute)
	if c.MaxMessage == 0 {
		c.MaxMessage = 16 << 10
	}
	if c.QueueLimit == 0 {
		c.QueueLimit = 1000
	}
	if c.RateLimit == (Rate{}) {
		c.RateLimit = Rate{PerSecond: 20, Burst: 40}
	}
	if c.MaxConns == 0 {
		c.MaxConns = 512
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

func (c *Config) validate() error {
	if err := names.Check("run", c.Run); err != nil {
		return err
	}
	if c.SocketPath == "" || c.StateDir == "" {
		return errors.New("relay: SocketPath and StateDir are required")
	}
	if c.Audit == nil {
		return errors.New("relay: Audit is required: every decision must be recorded (open one with audit.Open)")
	}
	if len(c.Credentials) == 0 {
		return errors.New("relay: no Credentials: give each agent and the operator one (GenerateCredential)")
	}
	secrets := make(map[string]string)
	for id, secret := range c.Credentials {
		if err := names.Check("identity", id); err != nil {
			return fmt.Errorf("relay: %w", err)
		}
		if id == Runner {
			return fmt.Errorf("relay: identity %q is reserved for check-ins: rename that agent", Runner)
		}
		if b, err := hex.DecodeString(secret); err != nil || len(b) < 16 {
			return fmt.Errorf("relay: the credential of %q must be hex with at least 128 bits (GenerateCredential makes one)", id)
		}
		if other, dup := secrets[secret]; dup {
			return fmt.Errorf("relay: %q and %q have the same credential: give each its own", other, id)
		}
		secrets[secret] = id
	}
	for id, patterns := range c.ACL {
		if _, ok := c.Credentials[id]; !ok {
			return fmt.Errorf("relay: the ACL has an entry for %q, which has no credential", id)
		}
		for _, p := range patterns {
			if _, err := path.Match(p, "x"); err != nil || p == "" {
				return fmt.Errorf("relay: ACL pattern %q of %q is malformed: use a name or a glob like \"eng-*\"", p, id)
			}
		}
	}
	if c.MaxMessage < 0 || c.MaxMessage > maxMaxMessage {
		return fmt.Errorf("relay: MaxMessage %d is out of range 1..%d", c.MaxMessage, maxMaxMessage)
	}
	if c.QueueLimit < 0 || c.QueueLimit > maxQueueLimit {
		return fmt.Errorf("relay: QueueLimit %d is out of range 1..%d", c.QueueLimit, maxQueueLimit)
	}
	if c.RateLimit.PerSecond <= 0 || c.RateLimit.Burst < 1 {
		return fmt.Errorf("relay: RateLimit needs PerSecond > 0 and Burst >= 1, got %+v", c.RateLimit)
	}
	if c.MaxConns < 1 {
		return fmt.Errorf("relay: MaxConns %d must be at least 1", c.MaxConns)
	}
	for _, d := range []time.Duration{c.HelloTimeout, c.IdleTimeout, c.FrameTimeout, c.WriteTimeout, c.AckTimeout} {
		if d < 0 {
			return errors.New("relay: timeouts must not be negative")
		}
	}
	for _, ci := range c.Checkins {
		if _, ok := c.Credentials[ci.Agent]; !ok {
			return fmt.Errorf("relay: check-in for %q, which has no credential", ci.Agent)
		}
		switch {
		case ci.Every != 0 && ci.AfterIdle != 0:
			return fmt.Errorf("relay: check-in for %q has both Every and AfterIdle: give it one", ci.Agent)
		case ci.AfterIdle != 0 && ci.AfterIdle < minCheckinEvery:
			return fmt.Errorf("relay: check-in for %q after %s idle: the minimum is %s", ci.Agent, ci.AfterIdle, minCheckinEvery)
		case ci.AfterIdle == 0 && ci.Every < minCheckinEvery:
			return fmt.Errorf("relay: check-in for %q every %s: the minimum is %s", ci.Agent, ci.Every, minCheckinEvery)
		}
		if err := checkBody(ci.Message, c.MaxMessage); err != nil {
			return fmt.Errorf("relay: check-in message for %q: %v", ci.Agent, err)
		}
	}
	return nil
}

// GenerateCredential returns a new secret: 32 random bytes, hex.
func GenerateCredential() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate relay credential: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

type credential struct {
	id  string
	sum [sha256.Size]byte
}

// Server is one run's relay. Create it with New, run it with Serve (once).
type Server struct {
	cfg       Config
	creds     []credential
	peers     map[string][]string // identity -> who it may send to
	idleAfter map[string][]int    // identity -> its after_idle times, seconds, sorted
	buckets   map[string]*bucket
	maxFrame  int
	compactAt int64
	schedWake chan struct{}
	// dead is cancelled, with the cause, when the relay can no longer do its
	// job safely (the audit log or journal failed); Serve then stops.
	dead context.Context
	kill context.CancelCauseFunc

	mu       sync.Mutex // guards the fields below and journal writes
	j        *journal
	nextID   uint64
	queues   map[string][]*message // recipient -> undelivered, in order
	history  map[string][]*message // recipient -> last delivered, for inbox
	seen     map[string]*seenSet   // sender -> client_ids accepted
	scheds   map[uint64]*schedule
	subs     map[string]*subscription
	declNext []time.Time          // when each declared check-in fires next (every only)
	lastIn   map[string]time.Time // identity -> last delivery to it (ack)
	lastOut  map[string]time.Time // identity -> last message it sent (accepted)
	served   bool

	connMu   sync.Mutex
	conns    map[net.Conn]struct{}
	perIdent map[string]int
	closing  bool

	noisyMu sync.Mutex
	noisy   map[noisyKey]int
}

type subscription struct {
	conn net.Conn
	wake chan struct{} // cap 1: "the queue may have grown"
}

// New validates cfg, takes StateDir for this relay and restores what the
// journal holds: undelivered messages, self-scheduled check-ins, recent
// deliveries and dedupe ids.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:       cfg,
		peers:     make(map[string][]string),
		idleAfter: make(map[string][]int),
		lastIn:    make(map[string]time.Time),
		lastOut:   make(map[string]time.Time),
		buckets:   make(map[string]*bucket),
		maxFrame:  maxFrameFor(cfg.MaxMessage),
		compactAt: compactAt,
		schedWake: make(chan struct{}, 1),
		nextID:    1,
		queues:    make(map[string][]*message),
		history:   make(map[string][]*message),
		seen:      make(map[string]*seenSet),
		scheds:    make(map[uint64]*schedule),
		subs:      make(map[string]*subscription),
		declNext:  make([]time.Time, len(cfg.Checkins)),
		conns:     make(map[net.Conn]struct{}),
		perIdent:  make(map[string]int),
		noisy:     make(map[noisyKey]int),
	}
	s.dead, s.kill = context.WithCancelCause(context.Background())
	ids := make([]string, 0, len(cfg.Credentials))
	for id := range cfg.Credentials {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		s.creds = append(s.creds, credential{id: id, sum: sha256.Sum256([]byte(cfg.Credentials[id]))})
		s.buckets[id] = &bucket{}
		s.seen[id] = newSeenSet()
		peers := []string{}
		for _, to := range ids {
			if to != id && s.mayReach(id, to) {
				peers = append(peers, to)
			}
		}
		s.peers[id] = peers
	}
	for _, c := range cfg.Checkins {
		if c.AfterIdle > 0 && !slices.Contains(s.idleAfter[c.Agent], idleSeconds(c.AfterIdle)) {
			s.idleAfter[c.Agent] = append(s.idleAfter[c.Agent], idleSeconds(c.AfterIdle))
			slices.Sort(s.idleAfter[c.Agent])
		}
	}

	j, recs, dropped, err := openJournal(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	s.j = j
	lost := s.replay(recs)
	// Compacting now also cuts off a torn tail and proves the dir writable.
	if err := j.rewrite(s.snapshot()); err != nil {
		j.close()
		return nil, err
	}
	if dropped > 0 {
		s.audit("journal_repair", "", "", fmt.Sprintf("dropped %d bytes of an incomplete last record (cut short by a crash before its sender got ok)", dropped))
	}
	for _, m := range lost {
		s.audit("drop", m.From, m.To, fmt.Sprintf("id=%d: the recipient is no longer in the run", m.ID))
	}
	if err := context.Cause(s.dead); err != nil {
		j.close()
		return nil, err
	}
	return s, nil
}

func (s *Server) now() time.Time { return s.cfg.Now() }

func (s *Server) known(id string) bool {
	_, ok := s.cfg.Credentials[id]
	return ok
}

// mayReach reports whether the ACL lets from send to to.
func (s *Server) mayReach(from, to string) bool {
	if from == Operator {
		return true
	}
	for _, p := range s.cfg.ACL[from] {
		if ok, _ := path.Match(p, to); ok {
			return true
		}
	}
	return false
}

// identify returns the identity whose credential is token, or "". It compares
// fixed-size digests against every credential, without stopping at a match,
// so timing reveals neither which identity matched nor how much of a guess
// was right.
func (s *Server) identify(token string) string {
	sum := sha256.Sum256([]byte(token))
	found := -1
	for i := range s.creds {
		eq := subtle.ConstantTimeCompare(sum[:], s.creds[i].sum[:])
		found = subtle.ConstantTimeSelect(eq, i, found)
	}
	if found < 0 {
		return ""
	}
	return s.creds[found].id
}

// Serve listens on SocketPath and serves until ctx is done, then closes every
// connection, removes the socket, releases StateDir and returns nil. It
// returns an error if it cannot listen, or if the audit log or journal fails
// (the relay stops rather than run unrecorded or non-durable).
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	if s.served {
		s.mu.Unlock()
		return errors.New("relay: Serve was already called on this Server; create a new one with New")
	}
	s.served = true
	start := s.now()
	for i, c := range s.cfg.Checkins {
		if c.Every > 0 {
			s.declNext[i] = start.Add(c.Every)
		}
	}
	pending := 0
	for _, q := range s.queues {
		pending += len(q)
	}
	detail := fmt.Sprintf("run=%s socket=%s pending=%d schedules=%d", s.cfg.Run, s.cfg.SocketPath, pending, len(s.scheds))
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.j.close()
		s.mu.Unlock()
	}()

	ln, err := listen(s.cfg.SocketPath)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(s.dead, func() { cancel(context.Cause(s.dead)) })
	defer stop()
	s.audit("relay_start", "", "", detail)

	var wg sync.WaitGroup
	wg.Go(func() {
		<-ctx.Done()
		ln.Close()
		s.closeAll()
	})
	wg.Go(func() { s.runScheduler(ctx) })
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.flushNoisy()
			}
		}
	})
	s.acceptLoop(ctx, ln, &wg)
	wg.Wait()
	s.flushNoisy()
	if err := context.Cause(s.dead); err != nil {
		return err
	}
	s.audit("relay_stop", "", "", "run="+s.cfg.Run)
	return nil
}

func listen(sock string) (net.Listener, error) {
	if len(sock) > 107 {
		return nil, fmt.Errorf("relay: socket path %s is %d bytes, unix sockets allow 107: use a shorter directory", sock, len(sock))
	}
	if st, err := os.Lstat(sock); err == nil {
		if st.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("relay: %s exists and is not a socket: remove it or choose another path", sock)
		}
		if c, err := net.DialTimeout("unix", sock, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("relay: another relay is listening on %s: stop it first", sock)
		}
		os.Remove(sock) // left by a relay that crashed
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("relay: listen: %w", err)
	}
	if err := os.Chmod(sock, 0o666); err != nil {
		ln.Close()
		return nil, fmt.Errorf("relay: %w", err)
	}
	return ln, nil
}

func (s *Server) acceptLoop(ctx context.Context, ln net.Listener, wg *sync.WaitGroup) {
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// Out of file descriptors, say: wait and retry rather than stop
			// serving the connections that are already open.
			s.auditNoisy("accept_error", "", "", err.Error())
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return
			}
			continue
		}
		backoff = 0
		if !s.track(c) {
			c.Close()
			s.auditNoisy("conn_limit", "", "", fmt.Sprintf("closed a new connection: %d are open, the limit", s.cfg.MaxConns))
			continue
		}
		wg.Go(func() { s.handle(ctx, c) })
	}
}

func (s *Server) track(c net.Conn) bool {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.closing || len(s.conns) >= s.cfg.MaxConns {
		return false
	}
	s.conns[c] = struct{}{}
	return true
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

// handle runs one connection: hello, then requests until it closes, idles
// out or misbehaves.
func (s *Server) handle(ctx context.Context, c net.Conn) {
	defer s.untrack(c)
	r := bufio.NewReaderSize(c, 4096)
	id := s.hello(c, r)
	if id == "" {
		return
	}
	defer s.unclaim(id)
	for {
		b, err := s.readFrame(c, r, s.cfg.IdleTimeout)
		var req request
		if err == nil {
			req, err = decodeRequest(b)
		}
		if err != nil {
			s.readFailed(c, id, err)
			return
		}
		if !s.buckets[id].take(s.now(), s.cfg.RateLimit) {
			s.auditNoisy("rate_limited", id, "", req.Type)
			if s.write(c, errReply(CodeRateLimited, "over %g requests/s (burst %d): slow down and retry", s.cfg.RateLimit.PerSecond, s.cfg.RateLimit.Burst)) != nil {
				return
			}
			continue
		}
		var resp any
		switch req.Type {
		case "send":
			resp = s.send(id, req)
		case "peers":
			resp = okFrame{V: version, Type: "ok", Peers: s.peers[id]}
		case "inbox":
			resp = s.inbox(id, req.N)
		case "schedule":
			resp = s.schedule(id, req)
		case "idle":
			resp = s.idle(id, req.For)
		case "stats":
			resp = s.stats(id)
		case "subscribe":
			s.subscribe(ctx, c, r, id)
			return
		default: // hello again, or ack outside a subscription
			s.readFailed(c, id, fmt.Errorf("unexpected %s request after hello", req.Type))
			return
		}
		if s.write(c, resp) != nil {
			return
		}
	}
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

// hello authenticates a new connection and returns its identity, or "" after
// refusing it.
func (s *Server) hello(c net.Conn, r *bufio.Reader) string {
	peer := peerCred(c)
	s.auditNoisy("connect", "", "", peer)
	c.SetReadDeadline(time.Now().Add(s.cfg.HelloTimeout))
	b, err := readFrame(r, helloMaxFrame)
	if err != nil {
		s.auditNoisy("auth_failed", "", "", fmt.Sprintf("no hello (%v); %s", err, peer))
		return ""
	}
	req, err := decodeRequest(b)
	if err == nil && req.Type != "hello" {
		err = fmt.Errorf("first frame is %s, not hello", req.Type)
	}
	if err != nil {
		s.auditNoisy("auth_failed", "", "", fmt.Sprintf("bad hello (%v); %s", err, peer))
		s.write(c, errReply(CodeBadRequest, "bad hello: %v", err))
		return ""
	}
	id := s.identify(req.Token)
	if id == "" {
		s.auditNoisy("auth_failed", "", "", "token matches no credential; "+peer)
		s.write(c, errReply(CodeUnauthorized, "the token matches no identity in run %s: use the credential file the runner gave this agent", s.cfg.Run))
		return ""
	}
	if !s.buckets[id].take(s.now(), s.cfg.RateLimit) {
		s.auditNoisy("rate_limited", id, "", "hello; "+peer)
		s.write(c, errReply(CodeRateLimited, "reconnecting too fast: back off and retry"))
		return ""
	}
	if !s.claim(id) {
		s.auditNoisy("deny", id, "", fmt.Sprintf("connection refused: %d already open; %s", maxConnsPerIdentity, peer))
		s.write(c, errReply(CodeTooManyConnections, "%s already has %d connections open: close some", id, maxConnsPerIdentity))
		return ""
	}
	s.audit("auth_ok", id, "", peer)
	if s.write(c, welcomeFrame{V: version, Type: "welcome", ID: id, Peers: s.peers[id], MaxMessage: s.cfg.MaxMessage, IdleAfter: s.idleAfter[id]}) != nil {
		s.unclaim(id)
		return ""
	}
	return id
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

// write sends one frame, giving the peer WriteTimeout to take it: a peer that
// stops reading loses its connection instead of holding the relay.
func (s *Server) write(c net.Conn, v any) error {
	b, err := encodeFrame(v)
	if err != nil {
		return err
	}
	c.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	_, err = c.Write(b)
	return err
}

// invalid audits and answers a request whose values are unacceptable.
func (s *Server) invalid(actor, target, format string, args ...any) errorFrame {
	e := errReply(CodeInvalid, format, args...)
	s.audit("invalid", actor, target, e.Reason)
	return e
}

func errReply(code, format string, args ...any) errorFrame {
	return errorFrame{V: version, Type: "error", Code: code, Reason: fmt.Sprintf(format, args...)}
}

// checkBody says what is wrong with a message body, if anything.
func checkBody(body string, max int) error {
	switch {
	case body == "":
		return errors.New("body is empty")
	case len(body) > max:
		return fmt.Errorf("body is %d bytes, the limit is %d: shorten it, or write it to a shared file and send the path", len(body), max)
	case !utf8.ValidString(body):
		return errors.New("body is not valid UTF-8")
	case strings.IndexByte(body, 0) >= 0:
		return errors.New("body contains a NUL byte")
	}
	return nil
}

func validClientID(cid string) bool {
	if len(cid) > maxClientID {
		return false
	}
	for _, r := range cid {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._:-", r)) {
			return false
		}
	}
	return true
}

// digest describes a body for the audit log without revealing it.
func digest(body string) string {
	sum := sha256.Sum256([]byte(body))
	return fmt.Sprintf("len=%d sha256=%x", len(body), sum)
}

func (s *Server) send(from string, req request) any {
	to := req.To
	if !names.Valid(to) {
		s.audit("deny", from, to, "not a valid name")
		return errReply(CodeUnknownRecipient, "%q is not a valid agent name (see peers)", to)
	}
	// The ACL is checked before existence, so that a denied sender cannot
	// probe which names exist.
	if !s.mayReach(from, to) {
		s.audit("deny", from, to, "not allowed by the run's ACL")
		return errReply(CodeForbidden, "%s may not send to %s: the run's ACL does not allow it (see peers)", from, to)
	}
	if !s.known(to) {
		s.audit("deny", from, to, "no such identity")
		return errReply(CodeUnknownRecipient, "there is no %s in run %s (see peers)", to, s.cfg.Run)
	}
	kind := "message"
	switch req.Kind {
	case "", "message":
	case "brief":
		if from != Operator {
			s.audit("deny", from, to, "only the operator may send briefs")
			return errReply(CodeForbidden, "only the operator may send kind brief")
		}
		kind = "brief"
	default:
		return s.invalid(from, to, "kind %q: use message (or brief, operator only)", req.Kind)
	}
	if err := checkBody(req.Body, s.cfg.MaxMessage); err != nil {
		return s.invalid(from, to, "%v", err)
	}
	if !validClientID(req.ClientID) {
		return s.invalid(from, to, "client_id must be at most %d letters, digits or ._:-", maxClientID)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if req.ClientID != "" {
		if id, ok := s.seen[from].ids[req.ClientID]; ok {
			s.audit("send", from, to, fmt.Sprintf("duplicate client_id %s: already accepted as id=%d, nothing queued", req.ClientID, id))
			return okFrame{V: version, Type: "ok", ID: id, Duplicate: true}
		}
	}
	if len(s.queues[to]) >= s.cfg.QueueLimit {
		s.audit("queue_full", from, to, fmt.Sprintf("%d undelivered", len(s.queues[to])))
		return errReply(CodeQueueFull, "%s has %d undelivered messages, the limit: retry later", to, s.cfg.QueueLimit)
	}
	m := &message{ID: s.nextID, From: from, To: to, Kind: kind, Body: req.Body, Time: s.now(), ClientID: req.ClientID}
	if err := s.journal(true, record{Op: "msg", Msg: m}); err != nil {
		return errReply(CodeUnavailable, "the relay could not store the message (%v): retry later", err)
	}
	s.enqueue(m)
	s.lastOut[from] = m.Time
	s.maybeCompact()
	s.audit("send", from, to, fmt.Sprintf("id=%d kind=%s %s", m.ID, kind, digest(m.Body)))
	return okFrame{V: version, Type: "ok", ID: m.ID}
}

func (s *Server) inbox(id string, n int) any {
	if n == 0 {
		n = inboxDefault
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.history[id]
	h = h[max(0, len(h)-n):]
	out := make([]Delivery, len(h))
	for i, m := range h {
		out[i] = m.delivery()
	}
	return okFrame{V: version, Type: "ok", Messages: out}
}

func (s *Server) schedule(id string, req request) any {
	after, err := time.ParseDuration(req.After)
	if err != nil || after <= 0 || after > maxScheduleAfter {
		return s.invalid(id, id, "after %q: give a positive duration up to %s, like 90s, 1.5m or 2h", req.After, maxScheduleAfter)
	}
	after = max(after, time.Second) // the floor: a check-in is for a later moment, not a loop
	if err := checkBody(req.Body, s.cfg.MaxMessage); err != nil {
		return s.invalid(id, id, "%v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, sc := range s.scheds {
		if sc.To == id {
			n++
		}
	}
	if n >= maxSchedules {
		s.audit("deny", id, id, "too many pending check-ins")
		return errReply(CodeTooManySchedules, "%d check-ins are already pending, the limit: wait for some to fire", maxSchedules)
	}
	sc := &schedule{ID: s.nextID, To: id, Body: req.Body, Due: s.now().Add(after)}
	if err := s.journal(true, record{Op: "sched", Sched: sc}); err != nil {
		return errReply(CodeUnavailable, "the relay could not store the check-in (%v): retry later", err)
	}
	s.nextID++
	s.scheds[sc.ID] = sc
	s.maybeCompact()
	s.audit("schedule", id, id, fmt.Sprintf("id=%d due=%s %s", sc.ID, sc.Due.UTC().Format(time.RFC3339), digest(sc.Body)))
	select {
	case s.schedWake <- struct{}{}:
	default:
	}
	due := sc.Due
	return okFrame{V: version, Type: "ok", ID: sc.ID, Due: &due}
}

// idle answers an idle request: id's shim reports that its pane has printed
// nothing for secs seconds. It fires id's after_idle check-ins whose time
// (in whole seconds) is the greatest that is at most secs — so a report
// that crossed several times fires the longest, once — except one whose
// previous firing is still undelivered. An agent can send this itself, but
// it only ever nudges itself, at its request rate.
func (s *Server) idle(id string, secs int) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	best := 0
	for _, c := range s.cfg.Checkins {
		if c.Agent == id && c.AfterIdle > 0 {
			if n := idleSeconds(c.AfterIdle); n <= secs && n > best {
				best = n
			}
		}
	}
	if best == 0 {
		s.auditNoisy("idle", id, "", fmt.Sprintf("idle for %ds: no after_idle check-in of %s is due", secs, id))
		return okFrame{V: version, Type: "ok"}
	}
	now, fired := s.now(), 0
	for i, c := range s.cfg.Checkins {
		if c.Agent != id || c.AfterIdle == 0 || idleSeconds(c.AfterIdle) != best {
			continue
		}
		if slices.ContainsFunc(s.queues[id], func(m *message) bool { return m.Decl == i+1 }) {
			s.auditNoisy("fire", Runner, id, "after_idle check-in skipped: the previous one is still undelivered")
			continue
		}
		m := &message{ID: s.nextID, From: Runner, To: id, Kind: "checkin", Body: c.Message, Time: now, Decl: i + 1}
		if err := s.journal(true, record{Op: "msg", Msg: m}); err != nil {
			s.auditNoisy("journal_error", Runner, id, "after_idle check-in not fired: "+err.Error())
			return errReply(CodeUnavailable, "the relay could not store the check-in (%v): retry later", err)
		}
		s.enqueue(m)
		s.audit("fire", Runner, id, fmt.Sprintf("id=%d after_idle %s (idle for %ds)", m.ID, c.AfterIdle, secs))
		fired++
	}
	s.maybeCompact()
	return okFrame{V: version, Type: "ok", Fired: fired}
}

// stats answers the operator's stats request: per identity, its queue,
// last traffic and check-ins. Agents are refused: it would tell them about
// each other.
func (s *Server) stats(id string) any {
	if id != Operator {
		s.audit("deny", id, "", "stats is for the operator only")
		return errReply(CodeForbidden, "only the operator may ask for stats")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]AgentStats, 0, len(s.creds))
	for _, c := range s.creds {
		st := AgentStats{ID: c.id, Queued: len(s.queues[c.id]), Subscribed: s.subs[c.id] != nil}
		st.LastIn, st.LastOut = timePtr(s.lastIn[c.id]), timePtr(s.lastOut[c.id])
		var next time.Time
		earliest := func(t time.Time) {
			if !t.IsZero() && (next.IsZero() || t.Before(next)) {
				next = t
			}
		}
		for i, ci := range s.cfg.Checkins {
			switch {
			case ci.Agent != c.id:
			case ci.AfterIdle > 0:
				st.IdleCheckins++
			default:
				st.Checkins++
				earliest(s.declNext[i])
			}
		}
		for _, sc := range s.scheds {
			if sc.To == c.id {
				st.Schedules++
				earliest(sc.Due)
			}
		}
		st.NextCheckin = timePtr(next)
		out = append(out, st)
	}
	return okFrame{V: version, Type: "ok", Stats: out}
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// later sets m[k] to t if t is later than what it holds.
func later(m map[string]time.Time, k string, t time.Time) {
	if t.After(m[k]) {
		m[k] = t
	}
}

// subscribe turns c into id's delivery stream: the relay sends the head of
// id's queue, waits for its ack, and moves on. One message is in flight at a
// time, which keeps order and matches pasting into one pane. A newer
// subscription for the same identity replaces this one.
func (s *Server) subscribe(ctx context.Context, c net.Conn, r *bufio.Reader, id string) {
	sub := &subscription{conn: c, wake: make(chan struct{}, 1)}
	s.mu.Lock()
	old := s.subs[id]
	s.subs[id] = sub
	s.mu.Unlock()
	detail := ""
	if old != nil {
		old.conn.Close()
		detail = "replaced the previous subscription"
	}
	s.audit("subscribe", id, "", detail)
	defer func() {
		s.mu.Lock()
		if s.subs[id] == sub {
			delete(s.subs, id)
		}
		s.mu.Unlock()
	}()
	if s.write(c, okFrame{V: version, Type: "ok"}) != nil {
		return
	}

	acks := make(chan uint64)
	readErr := make(chan error, 1)
	done := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		close(done)
		c.Close()
		wg.Wait()
	}()
	wg.Go(func() {
		for {
			b, err := s.readFrame(c, r, 0) // a subscriber may be quiet for hours
			var req request
			if err == nil {
				req, err = decodeRequest(b)
			}
			if err == nil && req.Type != "ack" {
				err = fmt.Errorf("a subscription only takes ack, got %s", req.Type)
			}
			if err != nil {
				readErr <- err
				return
			}
			select {
			case acks <- req.ID:
			case <-done:
				return
			}
		}
	})

	for {
		s.mu.Lock()
		var head *message
		if q := s.queues[id]; len(q) > 0 {
			head = q[0]
		}
		s.mu.Unlock()
		if head == nil {
			select {
			case <-sub.wake:
				continue
			case err := <-readErr:
				s.readFailed(c, id, err)
				return
			case <-ctx.Done():
				return
			}
		}
		if s.write(c, deliverFrame{V: version, Type: "deliver", Delivery: head.delivery()}) != nil {
			return
		}
		timer := time.NewTimer(s.cfg.AckTimeout)
		select {
		case ack := <-acks:
			timer.Stop()
			if ack != head.ID {
				s.readFailed(c, id, fmt.Errorf("ack for id %d while id %d is outstanding", ack, head.ID))
				return
			}
			s.acked(id, head)
		case <-timer.C:
			s.auditNoisy("ack_timeout", id, "", fmt.Sprintf("id=%d not acknowledged within %s: closing the subscription, it will be redelivered", head.ID, s.cfg.AckTimeout))
			return
		case err := <-readErr:
			timer.Stop()
			s.readFailed(c, id, err)
			return
		case <-ctx.Done():
			timer.Stop()
			return
		}
	}
}

// acked records that id acknowledged m.
func (s *Server) acked(id string, m *message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queues[id]
	if len(q) == 0 || q[0] != m {
		return // acked already, through a subscription this one replaced
	}
	detail := fmt.Sprintf("id=%d kind=%s acked", m.ID, m.Kind)
	now := s.now()
	m.Delivered = now
	s.lastIn[id] = now
	// No sync: if this record is lost in a crash, the message is delivered
	// again and the recipient drops the repeated id.
	if err := s.journal(false, record{Op: "ack", ID: m.ID, Time: now}); err != nil {
		detail += "; the ack could not be journaled, so it will be redelivered after a restart"
	}
	if len(q) == 1 {
		delete(s.queues, id)
	} else {
		s.queues[id] = q[1:]
	}
	s.remember(m)
	s.audit("deliver", m.From, id, detail)
	s.maybeCompact()
}

// journal appends records; an error that leaves the journal untrustworthy
// stops the relay. Call with s.mu held.
func (s *Server) journal(sync bool, recs ...record) error {
	err := s.j.appendRecords(sync, recs...)
	if err != nil && s.j.broken != nil {
		s.kill(s.j.broken)
	}
	return err
}

// maybeCompact rewrites the journal once it has grown well past the state it
// holds. Call with s.mu held, after the memory state caught up with the
// journal: the snapshot replaces everything appended so far.
func (s *Server) maybeCompact() {
	if s.j.size < s.compactAt || s.j.size < 2*s.j.base {
		return
	}
	if err := s.j.rewrite(s.snapshot()); err != nil {
		s.auditNoisy("journal_error", "", "", err.Error())
		if s.j.broken != nil {
			s.kill(s.j.broken)
		}
	}
}

// enqueue adds an accepted message to its recipient's queue. Call with s.mu
// held.
func (s *Server) enqueue(m *message) {
	s.nextID = max(s.nextID, m.ID+1)
	s.queues[m.To] = append(s.queues[m.To], m)
	if m.ClientID != "" {
		if set := s.seen[m.From]; set != nil {
			set.add(m.ClientID, m.ID)
		}
	}
	delete(s.scheds, m.Sched)
	if sub := s.subs[m.To]; sub != nil {
		select {
		case sub.wake <- struct{}{}:
		default:
		}
	}
}

// remember keeps a delivered message for inbox.
func (s *Server) remember(m *message) {
	h := append(s.history[m.To], m)
	if len(h) > inboxSize {
		h = slices.Clone(h[len(h)-inboxSize:])
	}
	s.history[m.To] = h
}

// replay rebuilds the state from journal records and returns the messages it
// had to drop because their recipient left the run.
func (s *Server) replay(recs []record) (lost []*message) {
	for _, r := range recs {
		switch r.Op {
		case "hdr":
			s.nextID = max(s.nextID, r.Next)
		case "msg":
			if !s.known(r.Msg.To) {
				lost = append(lost, r.Msg)
				s.nextID = max(s.nextID, r.Msg.ID+1)
				delete(s.scheds, r.Msg.Sched)
				continue
			}
			s.enqueue(r.Msg)
			later(s.lastOut, r.Msg.From, r.Msg.Time)
		case "ack":
			for to, q := range s.queues {
				if i := slices.IndexFunc(q, func(m *message) bool { return m.ID == r.ID }); i >= 0 {
					q[i].Delivered = r.Time
					later(s.lastIn, to, r.Time)
					s.remember(q[i])
					if q = slices.Delete(q, i, i+1); len(q) == 0 {
						delete(s.queues, to)
					} else {
						s.queues[to] = q
					}
					break
				}
			}
		case "hist":
			if s.known(r.Msg.To) {
				s.remember(r.Msg)
				later(s.lastIn, r.Msg.To, r.Msg.Delivered)
			}
			later(s.lastOut, r.Msg.From, r.Msg.Time)
		case "sched":
			s.nextID = max(s.nextID, r.Sched.ID+1)
			if s.known(r.Sched.To) {
				s.scheds[r.Sched.ID] = r.Sched
			}
		case "seen":
			if set := s.seen[r.Seen.From]; set != nil {
				set.add(r.Seen.ClientID, r.Seen.ID)
			}
		}
	}
	return lost
}

// snapshot is the current state as journal records, for compaction. Call
// with s.mu held.
func (s *Server) snapshot() []record {
	recs := []record{{Op: "hdr", Next: s.nextID}}
	for _, c := range s.creds {
		set := s.seen[c.id]
		for _, cid := range set.order {
			recs = append(recs, record{Op: "seen", Seen: &seenID{From: c.id, ClientID: cid, ID: set.ids[cid]}})
		}
	}
	for _, c := range s.creds {
		for _, m := range s.history[c.id] {
			recs = append(recs, record{Op: "hist", Msg: m})
		}
	}
	scheds := make([]*schedule, 0, len(s.scheds))
	for _, sc := range s.scheds {
		scheds = append(scheds, sc)
	}
	sort.Slice(scheds, func(i, j int) bool { return scheds[i].ID < scheds[j].ID })
	for _, sc := range scheds {
		recs = append(recs, record{Op: "sched", Sched: sc})
	}
	for _, c := range s.creds {
		for _, m := range s.queues[c.id] {
			recs = append(recs, record{Op: "msg", Msg: m})
		}
	}
	return recs
}

// runScheduler fires check-ins when they are due. It wakes at least once a
// second, so a clock that jumps (suspend, NTP, a test clock) is noticed.
func (s *Server) runScheduler(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.schedWake:
		}
		now := s.now()
		wait := time.Second
		if next := s.fireDue(now); !next.IsZero() {
			wait = min(wait, max(next.Sub(now), 0))
		}
		t.Reset(wait)
	}
}

// fireDue fires every check-in due at now and returns when the next one is
// due (zero if none).
func (s *Server) fireDue(now time.Time) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var next time.Time
	earliest := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for i, c := range s.cfg.Checkins {
		if c.Every == 0 {
			continue // after_idle: fired by idle requests
		}
		if now.Before(s.declNext[i]) {
			earliest(s.declNext[i])
			continue
		}
		s.declNext[i] = s.declNext[i].Add(c.Every)
		if !s.declNext[i].After(now) {
			s.declNext[i] = now.Add(c.Every) // fell behind: do not fire a burst
		}
		earliest(s.declNext[i])
		// An agent that has not taken the last check-in needs no second one.
		if slices.ContainsFunc(s.queues[c.Agent], func(m *message) bool { return m.Decl == i+1 }) {
			s.auditNoisy("fire", Runner, c.Agent, "declared check-in skipped: the previous one is still undelivered")
			continue
		}
		m := &message{ID: s.nextID, From: Runner, To: c.Agent, Kind: "checkin", Body: c.Message, Time: now, Decl: i + 1}
		if err := s.journal(true, record{Op: "msg", Msg: m}); err != nil {
			s.auditNoisy("journal_error", Runner, c.Agent, "declared check-in not fired: "+err.Error())
			continue
		}
		s.enqueue(m)
		s.audit("fire", Runner, c.Agent, fmt.Sprintf("id=%d declared every %s", m.ID, c.Every))
	}
	var due []*schedule
	for _, sc := range s.scheds {
		if now.Before(sc.Due) {
			earliest(sc.Due)
		} else {
			due = append(due, sc)
		}
	}
	sort.Slice(due, func(i, j int) bool {
		return due[i].Due.Before(due[j].Due) || due[i].Due.Equal(due[j].Due) && due[i].ID < due[j].ID
	})
	for _, sc := range due {
		m := &message{ID: s.nextID, From: Runner, To: sc.To, Kind: "checkin", Body: sc.Body, Time: now, Sched: sc.ID}
		if err := s.journal(true, record{Op: "msg", Msg: m}); err != nil {
			s.auditNoisy("journal_error", Runner, sc.To, "scheduled check-in not fired yet: "+err.Error())
			earliest(now.Add(time.Second))
			continue
		}
		s.enqueue(m)
		s.audit("fire", Runner, sc.To, fmt.Sprintf("id=%d scheduled check-in %d", m.ID, sc.ID))
	}
	s.maybeCompact()
	return next
}

// audit records a decision. If the log cannot be written the relay stops:
// it must not go on deciding without a record (invariant 10).
func (s *Server) audit(event, actor, target, detail string) {
	err := s.cfg.Audit.Append(audit.Event{Time: s.now(), Event: event, Actor: actor, Target: target, Detail: detail})
	if err != nil {
		s.kill(fmt.Errorf("relay stopped: %w; it cannot run without recording its decisions: fix the audit log, then restart", err))
	}
}

type noisyKey struct{ event, actor string }

// auditNoisy records events that a hostile client can cause at will (failed
// hellos, rate limiting, garbage): the first per event and actor each second
// is written, the rest are counted and written as one line by flushNoisy.
// That bounds the log's growth, and its fsyncs, under a flood.
func (s *Server) auditNoisy(event, actor, target, detail string) {
	k := noisyKey{event, actor}
	s.noisyMu.Lock()
	n, seen := s.noisy[k]
	s.noisy[k] = n + 1
	s.noisyMu.Unlock()
	if !seen {
		s.audit(event, actor, target, detail)
	}
}

func (s *Server) flushNoisy() {
	s.noisyMu.Lock()
	old := s.noisy
	s.noisy = make(map[noisyKey]int)
	s.noisyMu.Unlock()
	keys := make([]noisyKey, 0, len(old))
	for k, n := range old {
		if n > 1 {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].event < keys[j].event || keys[i].event == keys[j].event && keys[i].actor < keys[j].actor
	})
	for _, k := range keys {
		s.audit(k.event, k.actor, "", fmt.Sprintf("%d more in the last second, not logged one by one", old[k]-1))
	}
}

// bucket is one identity's token bucket.
type bucket struct {
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func (b *bucket) take(now time.Time, r Rate) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last.IsZero() {
		b.tokens, b.last = float64(r.Burst), now
	} else if now.After(b.last) { // a clock stepping back adds nothing
		b.tokens = min(float64(r.Burst), b.tokens+now.Sub(b.last).Seconds()*r.PerSecond)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// seenSet is the client_ids one sender used most recently, oldest first.
type seenSet struct {
	ids   map[string]uint64
	order []string
}

func newSeenSet() *seenSet { return &seenSet{ids: make(map[string]uint64)} }

func (s *seenSet) add(cid string, id uint64) {
	if _, ok := s.ids[cid]; ok {
		return
	}
	s.ids[cid] = id
	s.order = append(s.order, cid)
	if len(s.order) > seenPerSender {
		delete(s.ids, s.order[0])
		s.order = s.order[1:]
	}
}
