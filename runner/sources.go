package runner

import (
	"context"
	"fmt"
	"slices"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/plan"
)

// Mount sources are resolved twice, both times from the host as it is then
// (config.CheckSources: links only the operator or root made, none inside a
// writable mount, directories on the way writable only by the operator and
// root, no overlap with another agent's writable mount):
//
//  1. when plan and apply build the specs (desired), so a refused source
//     stops the apply before anything changes, and plan can say which
//     source resolves differently from the container's
//     runner.mount-sources label;
//  2. in execute, right before the container is created, after the agent's
//     old container was removed, with the running containers listed again.
//     From then until the engine mounts the paths at start, nobody but the
//     operator and root can change an entry on the way: every directory on
//     it is theirs alone, and another agent's writable mount (in the file,
//     or of any running runner container) never lies around or inside a
//     source. A shared directory is a mount root its containers cannot
//     rename.

// withSources is a with every mount's Source replaced by the host path it
// resolved to, which is what the engine is given: no symlink left for the
// engine to follow.
func withSources(a config.Agent, reals []string) config.Agent {
	a.Mounts = slices.Clone(a.Mounts)
	for i := range a.Mounts {
		a.Mounts[i].Source = reals[i]
	}
	return a
}

// sourceMap is target -> resolved source, for the runner.mount-sources label.
func sourceMap(resolved config.Agent) map[string]string {
	m := make(map[string]string, len(resolved.Mounts))
	for _, mt := range resolved.Mounts {
		m[mt.Target] = mt.Source
	}
	return m
}

// liveWriters are the writable bind mounts of every runner container on the
// engine, of any run, this one's included (until apply replaces or deletes
// them): their agents can plant links there, and keep doing so while this
// apply runs.
func (r *Runner) liveWriters(ctx context.Context, run string) ([]config.Writer, error) {
	list, err := r.Engine.List(ctx, "")
	if err != nil {
		return nil, err
	}
	var out []config.Writer
	for _, c := range list {
		for _, m := range c.Mounts {
			if m.ReadOnly {
				continue
			}
			w := config.Writer{Agent: c.Agent, Path: m.Source, What: fmt.Sprintf("agent %q's running container %s", c.Agent, c.Name)}
			if c.Run != run {
				// No agent name has a space: never judged as one of ours.
				w.Agent = "run " + c.Run + " agent " + c.Agent
				w.What = fmt.Sprintf("run %q's agent %q (container %s)", c.Run, c.Agent, c.Name)
			}
			out = append(out, w)
		}
	}
	return out, nil
}

// recheckSources resolves the agent's sources again at the moment of use,
// with the containers running then, and refuses the create when they are
// refused now or resolve elsewhere than when the spec was built.
func (r *Runner) recheckSources(ctx context.Context, cfg *config.Config, d desiredAgent) error {
	writers, err := r.liveWriters(ctx, cfg.Run.Name)
	if err != nil {
		return err
	}
	reals, err := config.CheckSources(cfg, writers...).Agent(d.agent.Name)
	if err != nil {
		return fmt.Errorf("not created: its mount sources changed during apply and are refused now:\n%w", err)
	}
	for i, m := range d.agent.Mounts {
		if was := d.sources[m.Target]; reals[i] != was {
			return fmt.Errorf("not created: mount %s's source %s resolved to %s when apply began and to %s now; something is changing it, apply again once it is settled", m.Target, m.Source, was, reals[i])
		}
	}
	return nil
}

// recordedSources is a with the sources its container c was created with,
// from c's runner.mount-sources label: status compares the container with
// what apply resolved and checked, and must work when a source is broken or
// refused now. A mount the label does not name keeps the path the file
// gives, so it shows up as a difference.
func recordedSources(a config.Agent, c engine.Container) config.Agent {
	was, _ := plan.DecodeSources(c.Labels[engine.LabelMountSources])
	a.Mounts = slices.Clone(a.Mounts)
	for i, m := range a.Mounts {
		if src, ok := was[m.Target]; ok {
			a.Mounts[i].Source = src
		}
	}
	return a
}
