package proxy

import "time"

// Limits bound what one agent can make the proxy hold. Zero fields take
// the defaults below.
type Limits struct {
	MaxHead          int           // request line + headers, bytes (8 KiB)
	MaxConnsPerAgent int           // open connections per agent, in any state (256)
	HandshakeTimeout time.Duration // request head, and a tunnel's first bytes (10 s)
	IdleTimeout      time.Duration // no bytes either way on an open connection (5 min)
	ResolveTimeout   time.Duration // name resolution (5 s)
	DialTimeout      time.Duration // connecting to the destination (10 s)
	MaxDestinations  int           // distinct destinations kept in Stats per agent (1024)
}

const (
	defaultMaxHead   = 8 << 10
	defaultMaxConns  = 256
	defaultHandshake = 10 * time.Second
	defaultIdle      = 5 * time.Minute
	defaultResolve   = 5 * time.Second
	defaultDial      = 10 * time.Second
	defaultMaxDests  = 1024
	// tick is how often a busy tunnel wakes to count bytes and check
	// for idleness; it bounds how stale Stats are.
	tick = time.Second
)

func (l *Limits) setDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxHead, defaultMaxHead)
	def(&l.MaxConnsPerAgent, defaultMaxConns)
	def(&l.MaxDestinations, defaultMaxDests)
	defD(&l.HandshakeTimeout, defaultHandshake)
	defD(&l.IdleTimeout, defaultIdle)
	defD(&l.ResolveTimeout, defaultResolve)
	defD(&l.DialTimeout, defaultDial)
}
