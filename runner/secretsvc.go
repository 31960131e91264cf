package runner

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/runner-dev/runner/internal/audit"
	"github.com/runner-dev/runner/internal/egress/inject"
	"github.com/runner-dev/runner/internal/egress/proxy"
	"github.com/runner-dev/runner/internal/egress/rules"
	"github.com/runner-dev/runner/internal/secrets"
	"github.com/runner-dev/runner/internal/state"
)

// The egress service's side of proxied secrets: the host-services process
// reads the run's secret store with the rest of its configuration, and the
// proxy hands tunnels toward a bound host to an inject.Injector, whose
// bindings a reload replaces in place (a rotated value is used from the
// next request on; the container is not touched).

// loadSecretStore is hostConfig's Secrets.
func loadSecretStore(st state.Run) (secrets.Store, error) { return secrets.Load(st) }

// injectBindings are the store's proxied secrets as the injector takes them.
func injectBindings(store secrets.Store) (map[string][]inject.Binding, error) {
	out := map[string][]inject.Binding{}
	for _, agent := range slices.Sorted(maps.Keys(store.Agents)) {
		for _, name := range slices.Sorted(maps.Keys(store.Agents[agent])) {
			e := store.Agents[agent][name]
			if e.Kind != secrets.KindInject {
				continue
			}
			r, err := rules.Compile(e.Hosts, nil)
			if err != nil {
				return nil, fmt.Errorf("secret %s of agent %s: hosts: %w", name, agent, err)
			}
			out[agent] = append(out[agent], inject.Binding{Name: name, Hosts: r, Header: e.Header, Scheme: e.Scheme, StandIn: e.StandIn, Value: e.Value})
		}
	}
	return out, nil
}

// reloadSecrets gives the injector the store's bindings, making the
// injector (and loading the run CA) the first time a secret is proxied.
// It reports whether the proxy must be made again to use a new injector.
func (s *egressService) reloadSecrets(store secrets.Store) (bool, error) {
	b, err := injectBindings(store)
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inj == nil {
		if len(b) == 0 {
			return false, nil
		}
		ca, err := inject.LoadCA(secrets.Dir(s.st))
		if err != nil {
			return false, err
		}
		st := s.st
		s.inj = inject.New(inject.Options{CA: ca, Roots: testInjectRoots(), Audit: func(e inject.Event) {
			// Folded by the injector: once per agent, secret and host.
			if log, err := audit.Open(st.Audit()); err == nil {
				log.Append(audit.Event{Time: time.Now(), Event: "secret_inject", Actor: e.Agent, Target: fmt.Sprintf("%s:%d", e.Host, e.Port), Detail: "secret " + e.Secret + " injected"})
				log.Close()
			}
		}})
		s.inj.SetBindings(b)
		return s.srv != nil, nil
	}
	s.inj.SetBindings(b)
	return false, nil
}

// interceptor is the proxy's Intercept: nil (no interface value) without
// proxied secrets.
func (s *egressService) interceptor() proxy.Interceptor {
	if s.inj == nil {
		return nil
	}
	return s.inj
}
