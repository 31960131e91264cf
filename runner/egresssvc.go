package runner

import (
	"context"
	"errors"
	"io/fs"
	"maps"
	"reflect"
	"slices"
	"sync"

	"github.com/runner-dev/runner/internal/audit"
	"github.com/runner-dev/runner/internal/egress/inject"
	"github.com/runner-dev/runner/internal/egress/proxy"
	"github.com/runner-dev/runner/internal/egress/rules"
	"github.com/runner-dev/runner/internal/state"
)

// egressService is the egress proxy as a component of the run's
// host-services process (Name, Run, Reload: the services.Service shape).
// It serves one socket per agent of the run's private/egress.json, at
// state.Run.EgressSocket, the socket the agent's container has mounted.
// A rules change is applied in place (UpdateRules closes the connections
// the new rules forbid); a change to the set of agents with egress starts
// a new proxy, because a proxy's agents are fixed when it is made.
type egressService struct {
	st       state.Run
	resolver proxy.Resolver // nil: the host's (see testEgressResolver)
	dialer   proxy.Dialer   // nil: the proxy's own

	mu         sync.Mutex
	rules      rules.File
	agentsFile string        // base name refusals give; "" is proxy's default
	srv        *proxy.Server // the proxy Run serves, nil if none
	serving    []string      // its agents, sorted
	restart    chan struct{}
	inj        *inject.Injector // proxied secrets (secretsvc.go); nil without
}

func newEgressService(st state.Run) *egressService {
	return &egressService{st: st, resolver: testEgressResolver(), dialer: testEgressDialer(), restart: make(chan struct{}, 1)}
}

func (s *egressService) Name() string { return "egress" }

// loadEgressRules reads the rules apply wrote; no file is no egress.
func loadEgressRules(st state.Run) (rules.File, error) {
	f, err := rules.Load(st.Egress())
	if errors.Is(err, fs.ErrNotExist) {
		return rules.File{}, nil
	}
	return f, err
}

// Reload is the services.Service method: the process's configuration
// carries the rules (private/egress.json) and the agents file's name
// (services.json), which refusals quote.
func (s *egressService) Reload(ctx context.Context, hc hostConfig) error {
	restart, err := s.reloadSecrets(hc.Secrets)
	if err != nil {
		return err
	}
	if restart {
		select {
		case s.restart <- struct{}{}:
		default:
		}
	}
	return s.reloadRules(ctx, hc.Egress, hc.Services.AgentsFile)
}

// reloadRules takes up new rules: in place for the agents already served,
// by a new proxy when agents gained or lost egress (or the agents file
// was renamed, which every refusal names).
func (s *egressService) reloadRules(ctx context.Context, f rules.File, agentsFile string) error {
	checkers, err := f.Compile()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, oldFile := s.rules, s.agentsFile
	s.rules, s.agentsFile = f, agentsFile
	if s.srv == nil || oldFile != agentsFile || !slices.Equal(s.serving, slices.Sorted(maps.Keys(f))) {
		select {
		case s.restart <- struct{}{}:
		default:
		}
		return nil
	}
	for name, c := range checkers {
		if !reflect.DeepEqual(old[name], f[name]) {
			if err := s.srv.UpdateRules(name, c); err != nil {
				return err
			}
		}
	}
	return nil
}

// Run serves until ctx ends. A proxy that cannot serve (a socket it cannot
// bind) is a failure: the supervisor runs it again.
func (s *egressService) Run(ctx context.Context) error {
	log, err := audit.Open(s.st.Audit())
	if err != nil {
		return err
	}
	defer log.Close()
	for {
		srv, err := s.next(log)
		if err != nil {
			return err
		}
		sctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		if srv != nil {
			go func() { done <- srv.Serve(sctx) }()
		}
		select {
		case <-ctx.Done():
		case <-s.restart:
		case err = <-done:
		}
		cancel()
		if srv != nil && err == nil {
			err = <-done
		}
		s.mu.Lock()
		s.srv, s.serving = nil, nil
		s.mu.Unlock()
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			return err
		}
	}
}

// next makes the proxy for the current rules (nil when no agent has
// egress), under the lock so that a Reload sees it with the rules it has.
func (s *egressService) next(log *audit.Log) (*proxy.Server, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	checkers, err := s.rules.Compile()
	if err != nil || len(checkers) == 0 {
		return nil, err
	}
	agents := map[string]proxy.AgentConfig{}
	for name, c := range checkers {
		agents[name] = proxy.AgentConfig{Socket: s.st.EgressSocket(name), Rules: c}
	}
	srv, err := proxy.New(proxy.Config{
		Agents: agents, Resolver: s.resolver, Dialer: s.dialer, AgentsFile: s.agentsFile, Intercept: s.interceptor(),
		// The proxy folds repeated refusals before they get here.
		Audit: func(e proxy.Event) { _ = log.Append(e.Audit()) },
	})
	if err != nil {
		return nil, err
	}
	s.srv, s.serving = srv, slices.Sorted(maps.Keys(checkers))
	return srv, nil
}
