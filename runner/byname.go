package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/names"
	"github.com/runner-dev/runner/internal/plan"
	"github.com/runner-dev/runner/internal/relay"
	"github.com/runner-dev/runner/internal/state"
)

// ConfigForRun is the config of a run found by name, as the engine and the
// state directory record it, for the commands given --run NAME instead of a
// file (the file changed, was renamed or is gone). Each agent is rebuilt
// from its container's runner.agent-config label, so status checks the
// container against the settings it was created with; an agent of the
// run's relay without a container is there by name. File is the file last
// applied when it still exists, else "(run NAME)". With a nil Engine only
// the state directory is read.
func (r *Runner) ConfigForRun(ctx context.Context, run string) (*config.Config, error) {
	if err := names.Check("run", run); err != nil {
		return nil, err
	}
	st, err := r.runState(run)
	if err != nil {
		return nil, err
	}
	var list []engine.Container
	if r.Engine != nil {
		if list, err = r.Engine.List(ctx, run); err != nil {
			return nil, err
		}
	}
	if len(list) == 0 && !st.Exists() {
		where := "on this host"
		if r.Engine != nil {
			where = "on " + r.Engine.Describe() + " nor in this host's state directory"
		}
		return nil, fmt.Errorf("no run %q %s: `runner ls` lists the runs", run, where)
	}
	cfg := &config.Config{File: fmt.Sprintf("(run %s)", run), Run: config.Run{Name: run}}
	ap, ok := readApplied(st)
	if ok && ap.File != "" {
		if _, err := os.Stat(ap.File); err == nil {
			cfg.File = ap.File
		}
	}
	cfg.Run.RequireRootless, cfg.Run.AcceptUnenforced = ap.Run.RequireRootless, ap.Run.AcceptUnenforced
	egress, _ := appliedEgress(st)
	seen := map[string]bool{}
	for _, c := range list {
		if seen[c.Agent] || names.Check("agent", c.Agent) != nil {
			continue
		}
		seen[c.Agent] = true
		a := config.Agent{Name: c.Agent, Image: c.Image}
		if v, ok := plan.DecodeView(c.Labels[engine.LabelAgentConfig]); ok {
			a = agentFromView(c.Agent, v)
		}
		if e, ok := egress[c.Agent]; ok {
			a.Egress = &config.Egress{Allow: e.Allow, Deny: e.Deny}
		}
		cfg.Agents = append(cfg.Agents, a)
	}
	for _, agent := range relayAgents(st) {
		if !seen[agent] {
			seen[agent] = true
			cfg.Agents = append(cfg.Agents, config.Agent{Name: agent})
		}
	}
	sort.Slice(cfg.Agents, func(i, j int) bool { return cfg.Agents[i].Name < cfg.Agents[j].Name })
	return cfg, nil
}

// agentFromView is the agent a container was created from, as far as its
// label records it.
func agentFromView(name string, v plan.View) config.Agent {
	a := config.Agent{
		// User stays unset: the run's allocation gives the agent the uid
		// its container has (and status does not call it the file's).
		Name: name, Image: v.Image, Command: slices.Clone(v.Command), Env: v.Env,
		Memory: v.Memory, NanoCPUs: v.NanoCPUs, Pids: v.Pids, Network: v.Network, Workdir: v.Workdir,
		TmpSize: v.TmpSize, HomeSize: v.HomeSize, Restart: v.Restart, MaxRestarts: v.MaxRestarts, RestartSet: true,
	}
	for _, m := range v.Mounts {
		a.Mounts = append(a.Mounts, config.Mount{Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly})
	}
	return a
}

// relayAgents are the agents the run's relay config knows.
func relayAgents(st state.Run) []string {
	b, err := os.ReadFile(st.RelayConfig())
	if err != nil {
		return nil
	}
	var rf relayFile
	if json.Unmarshal(b, &rf) != nil {
		return nil
	}
	var out []string
	for id := range rf.Sockets {
		if id != relay.Operator && names.Check("agent", id) == nil {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// RunSummary is one row of `runner ls`.
type RunSummary struct {
	Run     string `json:"run"`
	Running int    `json:"running"`
	Agents  int    `json:"agents"`
	// Since is when the run's oldest container was created (nil: it has
	// none on this engine).
	Since  *time.Time `json:"since,omitempty"`
	Engine string     `json:"engine"`
	// File is the config file of its last apply on this host ("" unknown);
	// FileMissing says it is no longer there.
	File        string `json:"file,omitempty"`
	FileMissing bool   `json:"file_missing,omitempty"`
	// State says whether the run has state on this host (relay, audit
	// log); a run on the engine without it was applied from elsewhere or
	// its state was removed.
	State bool `json:"state"`
}

// ListRuns is every run with containers on the engine, and every run with
// state on this host, by name.
func (r *Runner) ListRuns(ctx context.Context) ([]RunSummary, error) {
	list, err := r.Engine.List(ctx, "")
	if err != nil {
		return nil, err
	}
	byRun := map[string]*RunSummary{}
	agents := map[string]map[string]bool{}
	get := func(run string) *RunSummary {
		if s, ok := byRun[run]; ok {
			return s
		}
		s := &RunSummary{Run: run, Engine: r.Engine.Describe()}
		byRun[run] = s
		agents[run] = map[string]bool{}
		return s
	}
	for _, c := range list {
		if names.Check("run", c.Run) != nil {
			continue
		}
		s := get(c.Run)
		if !agents[c.Run][c.Agent] {
			agents[c.Run][c.Agent] = true
			s.Agents++
		}
		if c.State == "running" {
			s.Running++
		}
		if !c.Created.IsZero() && (s.Since == nil || c.Created.Before(*s.Since)) {
			t := c.Created
			s.Since = &t
		}
	}
	root := r.StateRoot
	if root == "" {
		if root, err = state.Root(); err != nil {
			return nil, err
		}
	}
	if entries, err := os.ReadDir(state.Run{Root: root}.Dir()); err == nil {
		// state.Run{}.Dir() is ROOT/runs/; each directory in it is a run.
		for _, e := range entries {
			if e.IsDir() && names.Check("run", e.Name()) == nil {
				get(e.Name())
			}
		}
	}
	var out []RunSummary
	for run, s := range byRun {
		st := state.Run{Root: root, Name: run}
		s.State = st.Exists()
		if ap, ok := readApplied(st); ok {
			s.File = ap.File
			if _, err := os.Stat(ap.File); err != nil {
				s.FileMissing = true
			}
		}
		if s.Agents == 0 {
			s.Agents = len(relayAgents(st))
		}
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Run < out[j].Run })
	return out, nil
}

// otherRunsOfFile warns about runs applied from this same file under
// another name (the run was renamed in the file): their containers are not
// part of this run's plan, and stay until destroyed by name.
func (r *Runner) otherRunsOfFile(ctx context.Context, cfg *config.Config, st state.Run) []string {
	entries, err := os.ReadDir(state.Run{Root: st.Root}.Dir())
	if err != nil || cfg.File == "" {
		return nil
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() || e.Name() == cfg.Run.Name || names.Check("run", e.Name()) != nil {
			continue
		}
		other := state.Run{Root: st.Root, Name: e.Name()}
		ap, ok := readApplied(other)
		if !ok || ap.File != cfg.File {
			continue
		}
		n := 0
		if list, err := r.Engine.List(ctx, other.Name); err == nil {
			n = len(list)
		}
		out = append(out, fmt.Sprintf("run %q (%s) was applied from this file under its old name; its containers belong to that run, not to %q, and this plan leaves them: remove them with `runner destroy --run %s`",
			other.Name, containersN(n), cfg.Run.Name, other.Name))
	}
	return out
}

// ArchivedAuditLogs are the audit logs destroy archived for runs of this
// name, oldest first (their names end in the UTC time of the destroy).
func ArchivedAuditLogs(run string) ([]string, error) {
	if err := names.Check("run", run); err != nil {
		return nil, err
	}
	root, err := state.Root()
	if err != nil {
		return nil, err
	}
	paths, err := filepath.Glob(filepath.Join(root, "archive", run+"-*.audit.log"))
	if err != nil {
		return nil, err
	}
	// A run named "a" must not pick up run "a-b"'s archives: after the
	// name and its dash comes the time, 20060102T150405Z.
	var out []string
	for _, p := range paths {
		ts := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), run+"-"), ".audit.log")
		if _, err := time.Parse("20060102T150405Z", ts); err == nil {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out, nil
}
