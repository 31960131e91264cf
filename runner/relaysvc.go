package runner

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/runner-dev/runner/internal/audit"
	"github.com/runner-dev/runner/internal/relay"
)

// relayService is the relay as a component of the host-services process.
// A new relay config (agents, ACL, check-ins, credentials) is taken up by
// serving a new relay.Server in place of the old one: the old one stops
// (its journal holds every accepted message), the new one replays the
// journal and listens; shims reconnect. The rest of the process (the
// recorder, the proxy) goes on undisturbed.
type relayService struct {
	log hclog.Logger

	mu      sync.Mutex
	cfg     relayFile
	want    uint64        // generation of cfg
	serving uint64        // generation the running relay serves (0: none)
	failed  error         // why the last relay of generation want failed
	changed chan struct{} // closed and replaced whenever serving or failed changes
	restart chan struct{}
}

func newRelayService(log hclog.Logger) *relayService {
	return &relayService{log: log, changed: make(chan struct{}), restart: make(chan struct{}, 1)}
}

func (s *relayService) Name() string { return "relay" }

// Reload takes up a changed relay config and returns once a relay serves
// it (answers the operator).
func (s *relayService) Reload(ctx context.Context, hc hostConfig) error {
	s.mu.Lock()
	if s.want > 0 && reflect.DeepEqual(s.cfg, hc.Relay) {
		s.mu.Unlock()
		return nil
	}
	first := s.want == 0
	s.cfg, s.failed = hc.Relay, nil
	s.want++
	want := s.want
	s.mu.Unlock()
	if first {
		return nil // Run has not started: it serves this config
	}
	select {
	case s.restart <- struct{}{}:
	default:
	}
	for {
		s.mu.Lock()
		serving, failed, changed := s.serving, s.failed, s.changed
		s.mu.Unlock()
		switch {
		case serving >= want:
			return nil
		case failed != nil:
			return fmt.Errorf("the relay failed with the new configuration: %w", failed)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("the relay did not come up with the new configuration: %w", ctx.Err())
		}
	}
}

// note updates what the service serves and wakes Reload.
func (s *relayService) note(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
	close(s.changed)
	s.changed = make(chan struct{})
}

// Run serves the current config until ctx ends, serving a new relay each
// time Reload changes it.
func (s *relayService) Run(ctx context.Context) error {
	for {
		select { // a restart asked for while none ran: this one serves it
		case <-s.restart:
		default:
		}
		s.mu.Lock()
		cfg, gen := s.cfg, s.want
		s.mu.Unlock()
		restarted, err := s.serve(ctx, cfg, gen)
		if err != nil {
			s.note(func() {
				s.serving = 0
				if gen == s.want {
					s.failed = err
				}
			})
			return err
		}
		if !restarted {
			return nil
		}
		s.log.Info("serving the new relay configuration")
	}
}

// serve runs one relay.Server for cfg until ctx ends (false) or Reload asks
// for a new one (true).
func (s *relayService) serve(ctx context.Context, cfg relayFile, gen uint64) (bool, error) {
	log, err := audit.Open(cfg.Audit)
	if err != nil {
		return false, err
	}
	defer log.Close()
	srv, err := relay.New(relay.Config{
		Run: cfg.Run, Sockets: cfg.Sockets, StateDir: cfg.Journal,
		Credentials: cfg.Credentials, ACL: cfg.ACL, Checkins: cfg.Checkins, Audit: log,
	})
	if err != nil {
		return false, err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx) }()
	go s.waitAnswers(sctx, cfg, gen)
	select {
	case err := <-done:
		if err == nil && ctx.Err() == nil {
			err = errors.New("the relay stopped by itself")
		}
		return false, err
	case <-s.restart:
		cancel()
		// The old server has released the journal and removed its
		// sockets once Serve returns.
		if err := <-done; err != nil {
			return false, err
		}
		s.note(func() { s.serving = 0 })
		return true, nil
	}
}

// waitAnswers marks generation gen as serving once the relay answers its
// operator socket with the operator's credential.
func (s *relayService) waitAnswers(ctx context.Context, cfg relayFile, gen uint64) {
	for ctx.Err() == nil {
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		c, err := relay.Dial(dctx, cfg.Sockets[relay.Operator], cfg.Credentials[relay.Operator])
		cancel()
		if err == nil {
			c.Close()
			s.note(func() { s.serving = gen })
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
}
