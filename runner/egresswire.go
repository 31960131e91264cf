package runner

import (
	"os"
	"path/filepath"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/state"
)

// prepareEgressDirs makes the proxy socket directory of every agent with
// egress (its container mounts it, so it must exist before the container is
// created, and the proxy binds its socket in it) and removes those of
// agents that have none, or are gone: a directory left behind would still
// be served by nobody, and one re-created later must start empty.
func prepareEgressDirs(cfg *config.Config, st state.Run) error {
	keep := map[string]bool{}
	for _, a := range cfg.Agents {
		if a.Egress == nil {
			continue
		}
		keep[a.Name] = true
		if err := st.CreateEgressAgentDir(a.Name); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(st.EgressDir())
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !keep[e.Name()] {
			if err := os.RemoveAll(filepath.Join(st.EgressDir(), e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}
