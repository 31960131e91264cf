package runner

import (
	"testing"

	"github.com/runner-dev/runner/internal/config"
)

// A job never restarts an agent unless its file asks for it, and leaves the
// caller's config alone.
func TestJobConfigRestarts(t *testing.T) {
	cfg := &config.Config{Agents: []config.Agent{
		{Name: "default", Restart: config.RestartOnFailure, MaxRestarts: 5},
		{Name: "asked", Restart: config.RestartAlways, MaxRestarts: 2, RestartSet: true},
	}}
	job := jobConfig(cfg)
	if got := job.Agents[0].Restart; got != config.RestartNever {
		t.Errorf("an agent without restart runs in a job with %q, want never", got)
	}
	if got := job.Agents[1]; got.Restart != config.RestartAlways || got.MaxRestarts != 2 {
		t.Errorf("an agent that sets restart runs with %+v", got)
	}
	if cfg.Agents[0].Restart != config.RestartOnFailure {
		t.Error("jobConfig changed the caller's config")
	}
}
