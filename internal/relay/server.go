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
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"
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

// Server is one run's relay. Create it with New, run it with Serve (once).
type Server struct {
	cfg       Config
	creds     []credential
	peers     map[string][]string // identity -> who it may send to
	senders   map[string]int      // identity -> how many agents may send to it
	idleAfter map[string][]int    // identity -> its after_idle times, seconds, sorted
	buckets   map[string]*bucket
	maxFrame  int
	compactAt int64
	schedWake chan struct{}
	// dead is cancelled, with the cause, when the relay can no longer do its
	// job safely (the audit log or journal failed); Serve then stops.
	dead context.Context
	kill context.CancelCauseFunc

	// commits queues the ops for the committer, the journal's only writer
	// while Serve runs (commit.go).
	commits committer

	mu          sync.Mutex // guards the fields below
	j           *journal
	nextID      uint64
	queues      map[string][]*message  // recipient -> undelivered, in order
	staged      map[uint64]*message    // accepted, being committed: counted, not deliverable yet
	stagedCID   map[cidKey]staged      // their client_ids
	schedStaged map[string]int         // identity -> self-scheduled check-ins being committed
	qcount      map[string]*queueCount // recipient -> what its queue holds, by sender
	history     map[string][]*message  // recipient -> last delivered, for inbox
	seen        map[string]*seenSet    // sender -> client_ids accepted
	scheds      map[uint64]*schedule
	subs        map[string]*subscription
	declNext    []time.Time          // when each declared check-in fires next (every only)
	lastIn      map[string]time.Time // identity -> last delivery to it (ack)
	lastOut     map[string]time.Time // identity -> last message it sent (accepted)
	served      bool

	connMu   sync.Mutex
	conns    map[net.Conn]struct{}
	perIdent map[string]int
	closing  bool

	noisyMu sync.Mutex
	noisy   map[noisyKey]int
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
		cfg:         cfg,
		peers:       make(map[string][]string),
		idleAfter:   make(map[string][]int),
		lastIn:      make(map[string]time.Time),
		lastOut:     make(map[string]time.Time),
		buckets:     make(map[string]*bucket),
		maxFrame:    maxFrameFor(cfg.MaxMessage),
		compactAt:   compactAt,
		schedWake:   make(chan struct{}, 1),
		nextID:      1,
		queues:      make(map[string][]*message),
		staged:      make(map[uint64]*message),
		stagedCID:   make(map[cidKey]staged),
		schedStaged: make(map[string]int),
		qcount:      make(map[string]*queueCount),
		senders:     make(map[string]int),
		history:     make(map[string][]*message),
		seen:        make(map[string]*seenSet),
		scheds:      make(map[uint64]*schedule),
		subs:        make(map[string]*subscription),
		declNext:    make([]time.Time, len(cfg.Checkins)),
		conns:       make(map[net.Conn]struct{}),
		perIdent:    make(map[string]int),
		noisy:       make(map[noisyKey]int),
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
			if id != Operator && s.mayReach(id, to) {
				s.senders[to]++
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
	s.reRecord(unaudited(recs))
	if err := context.Cause(s.dead); err != nil {
		j.close()
		return nil, err
	}
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

// Serve listens on every socket in Sockets and serves until ctx is done, then closes every
// connection, removes the sockets, releases StateDir and returns nil. It
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
	detail := fmt.Sprintf("run=%s sockets=%d pending=%d schedules=%d", s.cfg.Run, len(s.cfg.Sockets), pending, len(s.scheds))
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.j.close()
		s.mu.Unlock()
	}()

	socks, err := s.listenAll()
	if err != nil {
		return err
	}
	s.startCommitter()
	defer s.stopCommitter()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(s.dead, func() { cancel(context.Cause(s.dead)) })
	defer stop()
	s.audit("relay_start", "", "", detail)

	var wg sync.WaitGroup
	wg.Go(func() {
		<-ctx.Done()
		for _, so := range socks {
			so.ln.Close()
		}
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
	for _, so := range socks {
		wg.Go(func() { s.acceptLoop(ctx, so, &wg) })
	}
	wg.Wait()
	s.flushNoisy()
	if err := context.Cause(s.dead); err != nil {
		return err
	}
	s.audit("relay_stop", "", "", "run="+s.cfg.Run)
	return nil
}

// handle runs one connection: hello, then requests until it closes, idles
// out or misbehaves.
func (s *Server) handle(ctx context.Context, so *socket, c net.Conn) {
	defer s.untrack(c)
	r := bufio.NewReaderSize(c, 4096)
	id := s.hello(c, r, so)
	s.loggedIn(so)
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
		case "pending":
			resp = s.pending(id, req.N)
		case "take":
			resp = s.take(id, req.ID)
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
