package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"slices"
	"time"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/egress/rules"
	"github.com/runner-dev/runner/internal/plan"
	"github.com/runner-dev/runner/internal/state"
)

// Egress rules live on the host, in the run's private/egress.json, not in
// the container: not in its spec (so not in its config hash) and not in a
// label (Docker cannot change labels in place). A rules change is therefore
// an in-place update: apply rewrites the file and the run's egress proxy
// reloads it, and the container stays. The file is also what plan compares
// with, so plan shows exactly what the proxy enforces.

// egressFile is the rules file the config wants: every agent with egress.
func egressFile(cfg *config.Config) rules.File {
	f := rules.File{}
	for _, a := range cfg.Agents {
		if a.Egress != nil {
			f[a.Name] = a.Egress.Entries()
		}
	}
	return f
}

// appliedEgress reads the rules file the last apply wrote. A missing file
// is no egress yet; an unreadable one is reported as a plan warning and
// treated as empty (apply rewrites it).
func appliedEgress(st state.Run) (rules.File, string) {
	f, err := rules.Load(st.Egress())
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return rules.File{}, ""
	case err != nil:
		return rules.File{}, fmt.Sprintf("the run's egress rules file is unreadable (%s); apply rewrites it", err)
	}
	return f, ""
}

// planEgress fills in what plan needs to show egress changes and
// weaknesses.
func planEgress(cfg *config.Config, st state.Run, want []plan.Desired) (warnings []string) {
	applied, warning := appliedEgress(st)
	if warning != "" {
		warnings = append(warnings, warning)
	}
	wanted := egressFile(cfg)
	for i := range want {
		if e, ok := wanted[want[i].Agent]; ok {
			want[i].Egress = &e
		}
		if e, ok := applied[want[i].Agent]; ok {
			want[i].AppliedEgress = &e
		}
	}
	for _, a := range cfg.Agents {
		if a.Network == "bridge" {
			warnings = append(warnings, fmt.Sprintf(`%s: network = "bridge" reaches any address directly (the internet, the host's services, cloud metadata), bypassing the egress proxy; an egress allow-list with network "none" is stronger`, a.Name))
		}
	}
	return warnings
}

// writeEgress writes the rules file the config wants (atomically, 0600),
// unless it already holds exactly that. It reports whether it wrote.
func writeEgress(cfg *config.Config, st state.Run) (bool, error) {
	data, err := egressFile(cfg).Encode()
	if err != nil {
		return false, err
	}
	if old, err := os.ReadFile(st.Egress()); err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	if err := st.WriteFile(st.Egress(), data, 0o600); err != nil {
		return false, fmt.Errorf("writing the run's egress rules %s: %w", st.Egress(), err)
	}
	return true, nil
}

// waitEgressServed waits until the run's proxy answers on the socket of
// every agent with egress. A proxy that gains an agent is rebuilt by the
// host services after apply's reload returns, and a container started
// before its socket exists would find no proxy. The old proxy removes its
// sockets before the new one binds any, so one pass in which every socket
// answers means the new proxy serves them all. A dial that sends nothing is
// not a request: the proxy neither answers nor audits it.
func waitEgressServed(ctx context.Context, st state.Run, f rules.File) error {
	deadline := time.Now().Add(servicesStartTimeout)
	for {
		waiting := ""
		for _, name := range slices.Sorted(maps.Keys(f)) {
			var d net.Dialer
			dctx, cancel := context.WithTimeout(ctx, time.Second)
			c, err := d.DialContext(dctx, "unix", st.EgressSocket(name))
			cancel()
			if err != nil {
				waiting = name
				break
			}
			c.Close()
		}
		if waiting == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the run's egress proxy does not answer on agent %q's socket %s after %s: see the host services' log %s", waiting, st.EgressSocket(waiting), servicesStartTimeout, st.ServicesLog())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
