package runner

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/plan"
	"github.com/runner-dev/runner/internal/profile"
	"github.com/runner-dev/runner/internal/termsafe"
)

// One agent's part of apply: remove what it replaces, create and read back
// its container (fail closed), start it, wait for its tmux, watch its first
// second.

// createTimeout bounds one container create that Ctrl-C does not cut.
const createTimeout = 2 * time.Minute

// execute carries out one action. release gives back the caller's slot
// of engine parallelism once only the watch of the agent's first second
// (checkStarted) is left, so waiting agents do not hold up creating others.
func (r *Runner) execute(ctx context.Context, cfg *config.Config, a plan.Action, d desiredAgent, accepted map[string]bool, release func()) (string, error) {
	start := time.Now()
	r.log().Debug("apply action", "agent", a.Agent, "kind", a.Kind, "reason", a.Reason)
	for _, c := range a.Existing {
		r.progress("%s: removing %s (%s)...", a.Agent, shortID(c.ID), a.Reason)
		if err := r.Engine.Remove(ctx, c.ID); err != nil {
			return "", err
		}
	}
	if a.Kind == plan.Delete {
		r.progress("%s: deleted after %s", a.Agent, since(start))
		return "", nil
	}
	// The moment of use: the agent's old container is gone, so nothing of
	// this run can write on the way to its sources any more (see sources).
	if err := r.recheckSources(ctx, cfg, d); err != nil {
		return "", err
	}
	r.progress("%s: creating %s...", a.Agent, d.spec.Name)
	id, err := r.createVerified(ctx, d.spec, accepted)
	if err != nil {
		return "", err
	}
	if err := r.checkUIDUnique(ctx, d, id); err != nil {
		r.cleanup(id)
		return "", err
	}
	if err := r.Engine.Start(ctx, id); err != nil {
		r.cleanup(id)
		return "", err
	}
	if err := r.waitReady(ctx, id); err != nil {
		r.cleanup(id)
		return "", err
	}
	ready := time.Now()
	release()
	if err := r.checkStarted(ctx, id, d.agent, ready); err != nil {
		r.cleanup(id) // the next apply tries again, not "no changes"
		return "", err
	}
	r.progress("%s: running [id=%s] after %s", a.Agent, shortID(id), since(start))
	return id, nil
}

// createVerified creates the container and reads it back; any difference
// from the profile removes it again (fail closed).
func (r *Runner) createVerified(ctx context.Context, spec engine.Spec, accepted map[string]bool) (string, error) {
	// Create runs to its end even if ctx ends (Ctrl-C): a container the
	// engine made is then known here, and removed, never left behind. A
	// hung engine still ends it (and a second Ctrl-C ends runner).
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), createTimeout)
	defer cancel()
	id, err := r.Engine.Create(cctx, spec)
	if err != nil {
		return "", err
	}
	obs, err := r.Engine.Inspect(ctx, id)
	if err != nil {
		r.cleanup(id)
		return "", err
	}
	var bad []string
	for _, v := range profile.Check(spec, obs) {
		if v.Limit != "" && accepted[v.Limit] {
			r.log().Warn("limit not enforced by the engine, accepted by the config", "container", spec.Name, "limit", v.Limit, "detail", v.String())
			continue
		}
		bad = append(bad, v.String())
	}
	r.log().Debug("read back the created container", "container", spec.Name, "id", shortID(id), "differences", len(bad))
	if len(bad) > 0 {
		r.cleanup(id)
		return "", fmt.Errorf("refusing to start %s: the engine created it with settings that differ from the security profile:\n    %s", spec.Name, strings.Join(bad, "\n    "))
	}
	return id, nil
}

// cleanup removes a container that failed half-way; it uses its own context
// so an interrupted apply still leaves nothing half-created.
func (r *Runner) cleanup(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Engine.Remove(ctx, id); err != nil {
		r.log().Error("could not remove a failed container", "id", id, "error", err)
	}
}

// waitReady waits until the agent's tmux session exists, or reports why the
// container stopped (e.g. an image without tmux).
func (r *Runner) waitReady(ctx context.Context, id string) error {
	timeout := r.ReadyTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	deadline := time.Now().Add(timeout)
	delay := 20 * time.Millisecond
	for {
		obs, err := r.Engine.Inspect(ctx, id)
		if err != nil {
			return err
		}
		if obs.State != "running" && obs.State != "created" {
			logs, _ := r.Engine.Logs(ctx, id, 20)
			return fmt.Errorf("container %s during start (exit code %d): %s", obs.State, obs.ExitCode, strings.TrimSpace(termsafe.Text(logs)))
		}
		if obs.State == "running" {
			st, err := r.paneStateWith(ctx, id, profile.AgentBin(obs.Runtime))
			if err == nil && st.Tmux {
				return nil
			}
		}
		if time.Now().After(deadline) {
			logs, _ := r.Engine.Logs(ctx, id, 20)
			return fmt.Errorf("agent's tmux session did not come up within %s: %s", timeout, strings.TrimSpace(termsafe.Text(logs)))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		if delay < 250*time.Millisecond {
			delay *= 2
		}
	}
}
