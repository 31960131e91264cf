package runner

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/names"
	"github.com/runner-dev/runner/internal/profile"
	"github.com/runner-dev/runner/internal/relay"
	"github.com/runner-dev/runner/internal/shim"
	"github.com/runner-dev/runner/internal/state"
	"github.com/runner-dev/runner/internal/termsafe"
)

// agentBin is where runner-agent is in container id: the copy its runtime
// can run (profile.AgentBin), by the engine's record of that runtime. When
// the container cannot be inspected, the runc path: the exec then fails
// and says why.
func agentBin(ctx context.Context, eng engine.Engine, id string) string {
	obs, err := eng.Inspect(ctx, id)
	if err != nil {
		return profile.AgentBin("")
	}
	return profile.AgentBin(obs.Runtime)
}

// PaneState is what `runner-agent status` reports from inside a container;
// the shim owns the format.
type PaneState = shim.Status

// paneState asks an agent's runner-agent about its pane; no tmux answering
// is an error.
func (r *Runner) paneState(ctx context.Context, id string) (PaneState, error) {
	return r.paneStateWith(ctx, id, agentBin(ctx, r.Engine, id))
}

// paneStateWith is paneState when the caller has inspected the container
// already and knows its runner-agent path (one inspect less per agent).
func (r *Runner) paneStateWith(ctx context.Context, id, bin string) (PaneState, error) {
	res, err := r.Engine.Exec(ctx, id, "", []string{bin, "status"})
	if err != nil {
		return PaneState{}, err
	}
	st, err := decodePaneState(res)
	if err != nil {
		return PaneState{}, err
	}
	if res.ExitCode != 0 || !st.Tmux {
		return PaneState{}, fmt.Errorf("runner-agent status exited %d: %s %s", res.ExitCode, st.Error, stderrLine(res))
	}
	return st, nil
}

// AgentStatus is one row of `runner status`.
type AgentStatus struct {
	Agent     string `json:"agent"`
	Container string `json:"container,omitempty"`
	ID        string `json:"id,omitempty"`
	State     string `json:"state"` // running, exited, ..., or "absent"
	// Health is the engine's verdict from the container's health check
	// (`runner-agent health`: tmux and the agent's pane up) while it runs:
	// "starting", "healthy" or "unhealthy"; "none" for a container made
	// without a check (before runner had one: plan replaces it).
	Health    string    `json:"health,omitempty"`
	Image     string    `json:"image,omitempty"`
	StartedAt time.Time `json:"started_at,omitempty"`
	Uptime    string    `json:"uptime,omitempty"`
	// Process is the agent command's state in its pane: "running",
	// "exited (N)" (its exit status), "killed (signal N)", or "restarting
	// (N)" when it exited and its restart policy starts it again (N:
	// restarts so far).
	Process    string `json:"process,omitempty"`
	ExitStatus *int   `json:"exit_status,omitempty"`
	Restarts   int    `json:"restarts"`
	Restarting bool   `json:"restarting"`
	// IdleS is how many seconds ago the agent's pane last printed anything.
	IdleS *int64 `json:"idle_s,omitempty"`
	// From the run's relay: messages waiting for the agent, when one was
	// last delivered to it (LastIn) and when it last sent one (LastOut),
	// its pending check-ins (recurring and self-scheduled) and when the
	// next fires.
	Queued          int        `json:"queued"`
	LastIn          *time.Time `json:"last_in,omitempty"`
	LastOut         *time.Time `json:"last_out,omitempty"`
	CheckinsPending int        `json:"checkins_pending"`
	NextCheckin     *time.Time `json:"next_checkin,omitempty"`
	// Security is "verified" when the container matches the profile, else
	// the list of differences.
	Security   string   `json:"security"`
	Violations []string `json:"violations,omitempty"`
	Limits     string   `json:"limits,omitempty"`
	InConfig   bool     `json:"in_config"`
	// Workspace is the agent's clone, when it has one.
	Workspace *WorkspaceStatus `json:"workspace,omitempty"`
	// User is the container's "uid:gid" as the engine reports it; IDs
	// says what that is inside and on the host.
	User string    `json:"user,omitempty"`
	IDs  *AgentIDs `json:"ids,omitempty"`
	// Egress is the agent's egress rules and what the proxy did with
	// them (from the audit log); nil when it has no egress.
	Egress *EgressStatus `json:"egress,omitempty"`
}

// EgressStatus is the egress part of an agent's status: `egress: 3
// rules, 12 allowed, 2 denied`.
type EgressStatus struct {
	Source  string `json:"source"` // egress, egress_default or bridge
	Rules   int    `json:"rules"`
	Allowed int64  `json:"allowed"`
	Denied  int64  `json:"denied"`
	Line    string `json:"line"`
}

// StatusReport is the run's status plus the engine facts that matter.
type StatusReport struct {
	Run      string `json:"run"`
	Engine   string `json:"engine"`
	Rootless bool   `json:"rootless"`
	UserNS   bool   `json:"userns"`
	// IDMapping says how container uids map to host uids ("" if unknown).
	IDMapping string `json:"id_mapping,omitempty"`
	// Relay is "running", or why the run's relay could not be asked
	// (the relay fields of the agents are then empty).
	Relay string `json:"relay"`
	// OperatorInbox counts the messages agents sent to the operator that
	// wait for `runner inbox`.
	OperatorInbox int           `json:"operator_inbox"`
	Agents        []AgentStatus `json:"agents"`
}

// Status reports every agent of the config and any stray container of the run.
func (r *Runner) Status(ctx context.Context, cfg *config.Config) (StatusReport, error) {
	info, err := r.Engine.Info(ctx)
	if err != nil {
		return StatusReport{}, err
	}
	list, err := r.Engine.List(ctx, cfg.Run.Name)
	if err != nil {
		return StatusReport{}, err
	}
	rep := StatusReport{Run: cfg.Run.Name, Engine: r.Engine.Describe(), Rootless: info.Rootless, UserNS: info.UserNS}
	byAgent := map[string]engine.Container{}
	for _, c := range list {
		byAgent[c.Agent] = c
	}
	// Each agent is checked against the uid it would get now; a run whose
	// uids cannot be checked (a remote engine) is compared with the uid
	// its containers have, and says so.
	var ih *idHost
	if h, err := engineIDs(ctx, r.Engine, info, cfg.Run.Name); err == nil {
		ih = &h
		rep.IDMapping = h.mapping.Describe()
	} else {
		rep.IDMapping = "unknown: " + err.Error()
	}
	users, err := r.allocateUsers(ctx, cfg, info)
	if err != nil {
		users = map[string]string{}
		for _, c := range list {
			users[c.Agent] = c.Labels[engine.LabelUser]
		}
	}
	// Each agent costs an inspect and an exec: they run concurrently
	// (r.parallelism at once), each row into its own slot so the report
	// keeps the config's order.
	sr, err := r.runState(cfg.Run.Name)
	if err != nil {
		sr = state.Run{}
	}
	seen := map[string]bool{}
	var jobs []func() AgentStatus
	for _, a := range cfg.Agents {
		seen[a.Name] = true
		c, ok := byAgent[a.Name]
		if !ok {
			jobs = append(jobs, func() AgentStatus {
				return AgentStatus{Agent: a.Name, State: "absent", Security: "-", InConfig: true}
			})
			continue
		}
		jobs = append(jobs, func() AgentStatus {
			st := r.agentStatus(ctx, sr, cfg.Run.Name, withUser(a, users), c, true, cfg.Run.AcceptUnenforced)
			st.IDs = agentIDs(st.User, a.User != "", ih)
			return st
		})
	}
	for _, c := range list {
		if !seen[c.Agent] {
			jobs = append(jobs, func() AgentStatus {
				st := r.agentStatus(ctx, sr, cfg.Run.Name, config.Agent{Name: c.Agent}, c, false, nil)
				st.IDs = agentIDs(st.User, false, ih)
				return st
			})
		}
	}
	rep.Agents = make([]AgentStatus, len(jobs))
	r.forEachIndex(len(jobs), func(i int) { rep.Agents[i] = jobs[i]() })
	rep.Relay, rep.OperatorInbox = r.addRelayStats(ctx, cfg.Run.Name, rep.Agents)
	if ws := r.workspaceStatus(ctx, cfg.Run.Name, list); ws != nil {
		for i := range rep.Agents {
			rep.Agents[i].Workspace = ws[rep.Agents[i].Agent]
		}
	}
	r.addEgressStats(cfg, rep.Agents)
	plainReport(&rep)
	return rep, nil
}

// addEgressStats fills the agents' egress fields from the audit log. A log
// that cannot be read leaves the counts at zero: the rules still show.
func (r *Runner) addEgressStats(cfg *config.Config, agents []AgentStatus) {
	er, err := r.EgressReport(cfg, "")
	if err != nil {
		r.log().Warn("egress figures unavailable", "error", err)
	}
	by := map[string]EgressAgent{}
	for _, a := range er.Agents {
		by[a.Agent] = a
	}
	for i := range agents {
		ea, ok := by[agents[i].Agent]
		if !ok || ea.Source == "none" {
			continue
		}
		agents[i].Egress = &EgressStatus{Source: ea.Source, Rules: ea.Rules, Allowed: ea.Allowed, Denied: ea.Denied, Line: ea.Line()}
	}
}

// addRelayStats fills the agents' relay fields from the relay's stats and
// says how the relay is and how many messages wait for the operator.
func (r *Runner) addRelayStats(ctx context.Context, run string, agents []AgentStatus) (string, int) {
	st, err := r.runState(run)
	if err != nil {
		return "unknown: " + err.Error(), 0
	}
	c, err := r.operatorClient(ctx, st)
	if err != nil {
		return "not answering: " + err.Error(), 0
	}
	defer c.Close()
	stats, err := c.Stats()
	if err != nil {
		return "error: " + err.Error(), 0
	}
	byID := make(map[string]relay.AgentStats, len(stats))
	for _, s := range stats {
		byID[s.ID] = s
	}
	for i := range agents {
		s, ok := byID[agents[i].Agent]
		if !ok {
			continue
		}
		a := &agents[i]
		a.Queued, a.LastIn, a.LastOut = s.Queued, s.LastIn, s.LastOut
		a.CheckinsPending, a.NextCheckin = s.Checkins+s.Schedules, s.NextCheckin
	}
	return "running", byID[relay.Operator].Queued
}

// accepted are the limits the run accepts unenforced (accept_unenforced):
// as at apply, a limit the engine did not set is then no difference (the
// Limits column shows what is set).
func (r *Runner) agentStatus(ctx context.Context, sr state.Run, run string, a config.Agent, c engine.Container, inConfig bool, accepted []string) AgentStatus {
	st := AgentStatus{Agent: a.Name, Container: c.Name, ID: shortID(c.ID), State: c.State, Image: c.Image, InConfig: inConfig}
	obs, err := r.Engine.Inspect(ctx, c.ID)
	if err != nil {
		st.Security = "unknown: " + err.Error()
		return st
	}
	st.User = obs.User
	if obs.State == "running" {
		st.Health = healthOf(obs)
	}
	if !obs.StartedAt.IsZero() && obs.State == "running" {
		st.StartedAt = obs.StartedAt
		st.Uptime = time.Since(obs.StartedAt).Round(time.Second).String()
	}
	st.Limits = fmt.Sprintf("mem=%s cpus=%s pids=%d net=%s", bytesHuman(obs.Memory), strconv.FormatFloat(float64(obs.NanoCPUs)/1e9, 'f', -1, 64), obs.PidsLimit, obs.NetworkMode)
	if inConfig {
		// Compare against the spec the config wants now; a config change
		// since apply shows up here as a difference (and in plan).
		want := buildSpec(sr, run, recordedSources(a, c))
		want.Labels[engine.LabelConfigHash] = c.ConfigHash
		for _, v := range profile.Check(want, obs) {
			if v.Limit != "" && slices.Contains(accepted, v.Limit) {
				continue
			}
			st.Violations = append(st.Violations, v.String())
		}
	}
	switch {
	case !inConfig:
		st.Security = "not in config (plan will delete it)"
	case len(st.Violations) == 0:
		st.Security = "verified"
	default:
		st.Security = fmt.Sprintf("%d differences", len(st.Violations))
	}
	if obs.State == "running" {
		ps, err := r.paneStateWith(ctx, c.ID, profile.AgentBin(obs.Runtime))
		if err == nil {
			st.Restarts, st.Restarting, st.IdleS = ps.Restarts, ps.Restarting, ps.IdleS
			if ps.PaneDead {
				st.ExitStatus = ps.ExitStatus
			}
		}
		switch {
		case err != nil:
			st.Process = "unknown (" + err.Error() + ")"
		case ps.Restarting:
			st.Process = fmt.Sprintf("restarting (%d)", ps.Restarts)
		case ps.PaneDead && ps.ExitStatus != nil:
			st.Process = fmt.Sprintf("exited (%d)", *ps.ExitStatus)
		case ps.PaneDead && ps.ExitSignal != nil:
			st.Process = fmt.Sprintf("killed (signal %d)", *ps.ExitSignal)
		case ps.PaneDead:
			st.Process = "exited"
		default:
			st.Process = "running"
		}
	}
	return st
}

// healthOf is the health verdict status shows: only the engine's known
// words.
func healthOf(obs engine.Observed) string {
	switch {
	case obs.Health == nil:
		return "none"
	case obs.HealthStatus == "starting" || obs.HealthStatus == "healthy" || obs.HealthStatus == "unhealthy":
		return obs.HealthStatus
	}
	return "unknown"
}

func bytesHuman(n int64) string {
	switch {
	case n == 0:
		return "unlimited"
	case n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	default:
		return fmt.Sprintf("%dB", n)
	}
}

// Capture returns a snapshot of an agent's pane; lines > 0 includes that
// many lines of scrollback. It reads through the engine's exec API and never
// sends keys.
func (r *Runner) Capture(ctx context.Context, cfg *config.Config, agent string, lines int) (string, error) {
	c, err := r.container(ctx, cfg, agent)
	if err != nil {
		return "", err
	}
	text, err := r.captureText(ctx, c.ID, defaultLines(lines), false)
	if err != nil {
		return "", fmt.Errorf("capture %s: %w", agent, err)
	}
	return text, nil
}

// CaptureRaw is Capture with the pane's colours and attributes as escape
// sequences, not sanitized: they act on a terminal they are printed on.
func (r *Runner) CaptureRaw(ctx context.Context, cfg *config.Config, agent string, lines int) (string, error) {
	c, err := r.container(ctx, cfg, agent)
	if err != nil {
		return "", err
	}
	text, err := r.captureText(ctx, c.ID, defaultLines(lines), true)
	if err != nil {
		return "", fmt.Errorf("capture %s: %w", agent, err)
	}
	return text, nil
}

// defaultLines: Capture's lines 0 is runner-agent's default.
func defaultLines(lines int) int {
	if lines > 0 {
		return lines
	}
	return -1
}

// captureText runs `runner-agent capture --framed` and checks what it
// printed; lines is its --lines (0: the whole scrollback, -1: its default).
func (r *Runner) captureText(ctx context.Context, id string, lines int, raw bool) (string, error) {
	argv := []string{agentBin(ctx, r.Engine, id), "capture", "--framed"}
	if lines >= 0 {
		argv = append(argv, "--lines", strconv.Itoa(lines))
	}
	if raw {
		argv = append(argv, "--raw")
	}
	res, err := r.Engine.Exec(ctx, id, "", argv)
	if err != nil {
		return "", err
	}
	if res.ExitCode != 0 {
		return "", fmt.Errorf("runner-agent exited %d: %s", res.ExitCode, stderrLine(res))
	}
	return decodeCapture(res, raw)
}

// stderrLine is a helper's standard error as one line of plain text.
func stderrLine(res engine.ExecResult) string {
	s := res.Stderr
	if len(s) > 4<<10 {
		s = s[len(s)-4<<10:]
	}
	return strings.TrimSpace(termsafe.Line(s))
}

// agentOf finds an agent of the config by name.
func (r *Runner) agentOf(cfg *config.Config, agent string) (config.Agent, error) {
	var names []string
	for _, a := range cfg.Agents {
		if a.Name == agent {
			return a, nil
		}
		names = append(names, a.Name)
	}
	return config.Agent{}, unknownAgent(cfg, agent, names)
}

// CheckAgent fails, suggesting the nearest name, if the config has no
// agent of that name; the CLI checks before it prints anything.
func CheckAgent(cfg *config.Config, agent string) error {
	_, err := (&Runner{}).agentOf(cfg, agent)
	return err
}

// unknownAgent says the name is wrong and, when one is close, which was
// meant; otherwise it lists the agents.
func unknownAgent(cfg *config.Config, agent string, known []string) error {
	file := filepath.Base(cfg.File)
	if near, ok := names.Nearest(agent, known); ok {
		return fmt.Errorf("no agent %q in %s; did you mean %q?", agent, file, near)
	}
	return fmt.Errorf("no agent %q in %s; its agents are: %s", agent, file, strings.Join(known, ", "))
}

// container finds the running container of one agent of the config.
func (r *Runner) container(ctx context.Context, cfg *config.Config, agent string) (engine.Container, error) {
	if _, err := r.agentOf(cfg, agent); err != nil {
		return engine.Container{}, err
	}
	list, err := r.Engine.List(ctx, cfg.Run.Name)
	if err != nil {
		return engine.Container{}, err
	}
	for _, c := range list {
		if c.Agent == agent {
			if c.State != "running" {
				return engine.Container{}, fmt.Errorf("agent %q's container %s is %s: run `runner apply %s`", agent, c.Name, c.State, cfg.File)
			}
			return c, nil
		}
	}
	return engine.Container{}, fmt.Errorf("agent %q is not running: run `runner apply %s` first", agent, cfg.File)
}
