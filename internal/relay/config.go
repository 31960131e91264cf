package relay

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/runner-dev/runner/internal/audit"
	"github.com/runner-dev/runner/internal/names"
	"path"
	"time"
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

// Config is everything a relay needs. Zero values take the documented
// defaults.
type Config struct {
	Run string
	// Sockets maps every identity to the unix socket it connects on, one
	// socket per identity. A connection may only log in as the identity of
	// the socket it arrived on, and pre-login limits are per socket, so one
	// agent cannot exhaust another's (or the operator's) slots. Agents'
	// sockets are mode 0666: the directory the caller puts each in (mounted
	// into that agent's container only) decides who can reach it, the
	// credential who gets in. The operator's is 0600: it is mounted nowhere
	// and only this process's user connects to it.
	Sockets map[string]string
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

	MaxPreLogin  int           // connections per socket still in hello; default 64, more are closed at once
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
	if c.MaxPreLogin == 0 {
		c.MaxPreLogin = 64
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

func (c *Config) validate() error {
	if err := names.Check("run", c.Run); err != nil {
		return err
	}
	if c.StateDir == "" {
		return errors.New("relay: StateDir is required")
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
	if c.MaxPreLogin < 1 {
		return fmt.Errorf("relay: MaxPreLogin %d must be at least 1", c.MaxPreLogin)
	}
	paths := make(map[string]string)
	for id := range c.Credentials {
		p := c.Sockets[id]
		if p == "" {
			return fmt.Errorf("relay: %q has no socket: give every identity its own (Sockets)", id)
		}
		if other, dup := paths[p]; dup {
			return fmt.Errorf("relay: %q and %q share the socket %s: give each its own", other, id, p)
		}
		paths[p] = id
	}
	for id := range c.Sockets {
		if _, ok := c.Credentials[id]; !ok {
			return fmt.Errorf("relay: there is a socket for %q, which has no credential", id)
		}
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
