package runner

import (
	"context"
	"time"

	"github.com/runner-dev/runner/internal/config"
)

// Schedule asks the run's relay for a one-off check-in with body for agent
// after the given time, as the operator (what agents do for themselves);
// it returns the check-in's id and when it is due. The relay audits it.
func (r *Runner) Schedule(ctx context.Context, cfg *config.Config, agent string, after time.Duration, body string) (uint64, time.Time, error) {
	if _, err := r.agentOf(cfg, agent); err != nil {
		return 0, time.Time{}, err
	}
	st, err := r.runState(cfg.Run.Name)
	if err != nil {
		return 0, time.Time{}, err
	}
	c, err := r.operatorClient(ctx, st)
	if err != nil {
		return 0, time.Time{}, relayUnreachable(cfg.Run.Name, cfg.File, err)
	}
	defer c.Close()
	return c.ScheduleFor(agent, after, body)
}
