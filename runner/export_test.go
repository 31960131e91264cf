package runner

import (
	"context"

	"github.com/runner-dev/runner/internal/egress/proxy"
	"github.com/runner-dev/runner/internal/state"
)

// ServeEgressForTest runs the egress proxy component of run st in the test
// process, with a resolver that maps test names to the test's servers on
// loopback (tests may not reach the internet). It exists only in the test
// binary, so no build of runner can be given another resolver.
func ServeEgressForTest(ctx context.Context, st state.Run, resolver proxy.Resolver) error {
	f, err := loadEgressRules(st)
	if err != nil {
		return err
	}
	s := newEgressService(st)
	s.resolver = resolver
	if err := s.Reload(ctx, f); err != nil {
		return err
	}
	return s.Run(ctx)
}
