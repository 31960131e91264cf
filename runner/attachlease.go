package runner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/names"
	"github.com/runner-dev/runner/internal/state"
)

// Every attach leaves a lease in the run's private state on this host,
// naming its id, its agent and the CLI process holding it; detaching ends
// the tmux client in the container and removes the lease. A CLI that died
// without detaching (SIGKILL, a lost session) leaves its lease behind with
// a process that is gone: the next attach to the run ends those clients.
// Whether the holder lives is decided on this host, never by the container.

var leaseName = regexp.MustCompile(`^[0-9a-f]{32}$`)

func leaseDir(st state.Run) string { return filepath.Join(st.Private(), "attach") }

// takeLease records this process's attach id for agent.
func takeLease(st state.Run, id, agent string) error {
	dir := leaseDir(st)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	start, ok := procStart(os.Getpid())
	if !ok {
		return fmt.Errorf("cannot read this process's start time")
	}
	return st.WriteFile(filepath.Join(dir, id), fmt.Appendf(nil, "%d %s %s\n", os.Getpid(), start, agent), 0o600)
}

func dropLease(st state.Run, id string) { os.Remove(filepath.Join(leaseDir(st), id)) }

// endStaleAttaches ends the clients of leases whose holder is gone.
func (r *Runner) endStaleAttaches(ctx context.Context, cfg *config.Config, st state.Run) {
	ents, err := os.ReadDir(leaseDir(st))
	if err != nil {
		return
	}
	for _, e := range ents {
		id := e.Name()
		if !leaseName.MatchString(id) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(leaseDir(st), id))
		f := strings.Fields(string(b))
		if err != nil || len(f) != 3 || names.Check("agent", f[2]) != nil {
			dropLease(st, id)
			continue
		}
		pid, _ := strconv.Atoi(f[0])
		if start, ok := procStart(pid); ok && start == f[1] {
			continue // its CLI is still attached
		}
		if c, err := r.container(ctx, cfg, f[2]); err == nil {
			r.log().Info("ending the tmux client of an attach whose CLI is gone", "agent", f[2], "id", id)
			r.endAttach(ctx, c.ID, id)
		}
		dropLease(st, id)
	}
}

// procStart is a process's start time (field 22 of /proc/PID/stat), which
// tells it from a later process given the same pid.
func procStart(pid int) (string, bool) {
	if pid <= 0 {
		return "", false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", false
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return "", false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return "", false
	}
	return f[19], true
}
