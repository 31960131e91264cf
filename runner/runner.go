// Package runner is the public Go API: plan, apply, status, capture and
// destroy a run of agents described by a config.Config on an engine.
package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/plan"
	"github.com/runner-dev/runner/internal/profile"
	"github.com/runner-dev/runner/internal/secrets"
	"github.com/runner-dev/runner/internal/state"
	"github.com/runner-dev/runner/internal/workspace"
)

// Runner carries what every operation needs.
type Runner struct {
	Engine engine.Engine
	Log    hclog.Logger
	// Progress receives one line per step of long operations.
	Progress io.Writer
	// Approve, when set, is shown the plan Apply is about to carry out,
	// before anything changes; an error stops Apply with nothing done (the
	// CLI prints the plan and asks on a terminal). Apply then does exactly
	// this plan.
	Approve func(plan.Plan) error
	// Parallelism bounds concurrent container operations (default 16:
	// the engine queues them itself, and a start mostly waits on it).
	Parallelism int
	// ReadyTimeout bounds how long apply waits for an agent's tmux to come up.
	ReadyTimeout time.Duration
	// StateRoot overrides the state directory (default: state.Root()).
	StateRoot string
	// Program is the argv that runs this program, to start the run's host
	// services ("services serve ROOT RUN");
	// default: the running executable. Tests and libraries set it.
	Program []string
	// LockTimeout is how long apply, destroy, run and fetch wait for
	// another operation on the same run to finish (runlock.go); 0 fails
	// at once, naming the holder.
	LockTimeout time.Duration
}

func (r *Runner) log() hclog.Logger {
	if r.Log == nil {
		return hclog.NewNullLogger()
	}
	return r.Log
}

func (r *Runner) progress(format string, args ...any) {
	if r.Progress != nil {
		fmt.Fprintf(r.Progress, format+"\n", args...)
	}
}

// desiredAgent is an agent with the hardened spec built for it.
type desiredAgent struct {
	agent config.Agent // as the file says it
	spec  engine.Spec
	// sources maps each mount target to the host path its source resolved
	// to when spec was built.
	sources map[string]string
	// view is the agent's settings as plan shows them (also the
	// runner.agent-config label of spec).
	view plan.View
	// workspace is the agent's clone, or nil.
	workspace *wantWorkspace
}

// Desired builds the spec of every agent and checks every image is present,
// so nothing is created when one is missing. The config hash covers the spec
// and the image ID, so rebuilding an image replaces its agents. Mount
// sources are resolved here, from the host as it is now (see sources).
func (r *Runner) desired(ctx context.Context, cfg *config.Config, st state.Run, users map[string]string) ([]desiredAgent, error) {
	writers, err := r.liveWriters(ctx, cfg.Run.Name)
	if err != nil {
		return nil, err
	}
	srcs := config.CheckSources(cfg, writers...)
	if err := srcs.Err(); err != nil {
		return nil, err
	}
	bases, err := workspaceBases(ctx, cfg, srcs)
	if err != nil {
		return nil, err
	}
	images := map[string]engine.Image{}
	var missing []string
	for _, a := range cfg.Agents {
		if _, seen := images[a.Image]; seen {
			continue
		}
		img, found, err := r.Engine.Image(ctx, a.Image)
		if err != nil {
			return nil, err
		}
		if !found {
			missing = append(missing, a.Image)
		}
		images[a.Image] = img
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("image %s not found on %s: build the default image with `runner image build`, or build yours with `docker build` (see images/README.md); no registry is used",
			strings.Join(quote(missing), ", "), r.Engine.Describe())
	}
	// Stand-ins as the last apply stored them (Apply writes the store first).
	store, err := secrets.Load(st)
	if err != nil {
		return nil, err
	}
	out := make([]desiredAgent, 0, len(cfg.Agents))
	for _, a := range cfg.Agents {
		reals, err := srcs.Agent(a.Name)
		if err != nil {
			return nil, err
		}
		resolved := withSources(withUser(a, users), reals)
		spec := buildSpec(st, cfg.Run.Name, resolved)
		ws, wsKey := wantWorkspaceOf(st, cfg.Run.Name, a, srcs.WorkspaceRepo(a.Name), bases[a.Name])
		sum := sha256.Sum256([]byte(profile.Hash(spec) + "\x00" + images[a.Image].ID + secretBindings(a) + wsKey))
		addStandIns(&spec, a, store)
		spec.Labels[engine.LabelConfigHash] = hex.EncodeToString(sum[:16])
		spec.Labels[engine.LabelMountSources] = plan.EncodeSources(sourceMap(resolved))
		view := viewOf(resolved, images[a.Image].ID)
		spec.Labels[engine.LabelAgentConfig] = plan.EncodeView(view)
		out = append(out, desiredAgent{agent: a, spec: spec, sources: sourceMap(resolved), view: view, workspace: ws})
	}
	return out, nil
}

// buildSpec is the hardened spec of one agent plus every mount runner adds
// to it: the relay's, with egress its proxy socket's, what its secrets need
// (never their values) and its workspace clone. a's mount sources must
// already be resolved (withSources). Apply, plan and status all build the
// spec here, so status compares a container with what apply made.
func buildSpec(st state.Run, run string, a config.Agent) engine.Spec {
	spec := profile.Build(run, a)
	spec.Mounts = append(spec.Mounts, relayMounts(st, a.Name)...)
	if a.Egress != nil {
		spec.Mounts = append(spec.Mounts, profile.EgressMount(st.EgressAgentDir(a.Name)))
	}
	addSecretMounts(&spec, st, a)
	if w := a.Workspace; w != nil {
		spec.Mounts = append(spec.Mounts, engine.Mount{Source: workspace.CloneDir(st, a.Name), Target: w.Path, ReadOnly: false})
	}
	return spec
}

func quote(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// Preflight refuses engines that cannot give the run what it asks for:
// rootless when required, and every limit the config sets unless the config
// accepts that the engine cannot enforce it.
func Preflight(cfg *config.Config, info engine.Info) error {
	var problems []string
	if cfg.Run.RequireRootless && !info.Rootless && !info.UserNS {
		problems = append(problems, fmt.Sprintf("run %q sets require_rootless = true but %s %s runs containers as host root (no rootless mode, no user namespace remapping): point DOCKER_HOST at a rootless daemon or enable userns-remap", cfg.Run.Name, info.Name, info.Endpoint))
	}
	if !info.Seccomp {
		problems = append(problems, fmt.Sprintf("%s %s does not support seccomp; runner will not start agents without it", info.Name, info.Endpoint))
	}
	accepted := map[string]bool{}
	for _, l := range cfg.Run.AcceptUnenforced {
		accepted[l] = true
	}
	for _, l := range []struct {
		name string
		ok   bool
	}{{"memory", info.MemoryLimit}, {"pids", info.PidsLimit}, {"cpus", info.CPULimit}} {
		if !l.ok && !accepted[l.name] {
			problems = append(problems, fmt.Sprintf("%s %s cannot enforce the %s limit (cgroup v%s, driver %q): use an engine that can, or accept it explicitly with accept_unenforced = [%q] in the run block", info.Name, info.Endpoint, l.name, info.CgroupVersion, info.CgroupDriver, l.name))
		}
	}
	problems = append(problems, missingRuntimes(cfg, info)...)
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}
	return nil
}

// Plan computes what Apply would do.
func (r *Runner) Plan(ctx context.Context, cfg *config.Config) (plan.Plan, error) {
	p, _, err := r.plan(ctx, cfg)
	return p, err
}

func (r *Runner) plan(ctx context.Context, cfg *config.Config) (plan.Plan, []desiredAgent, error) {
	st, err := r.runState(cfg.Run.Name)
	if err != nil {
		return plan.Plan{}, nil, err
	}
	info, err := r.Engine.Info(ctx)
	if err != nil {
		return plan.Plan{}, nil, err
	}
	users, err := r.allocateUsers(ctx, cfg, info)
	if err != nil {
		return plan.Plan{}, nil, err
	}
	ds, err := r.desired(ctx, cfg, st, users)
	if err != nil {
		return plan.Plan{}, nil, err
	}
	actual, err := r.Engine.List(ctx, cfg.Run.Name)
	if err != nil {
		return plan.Plan{}, nil, err
	}
	want := make([]plan.Desired, len(ds))
	inplace := map[string]plan.InPlace{}
	for _, d := range ds {
		inplace[d.agent.Name] = inPlaceOf(cfg, d.agent)
	}
	applied, err := appliedInPlace(st, inplace)
	if err != nil {
		return plan.Plan{}, nil, fmt.Errorf("reading run %q's relay config %s: %w", cfg.Run.Name, st.RelayConfig(), err)
	}
	for i, d := range ds {
		want[i] = plan.Desired{Agent: d.agent.Name, Hash: d.spec.Labels[engine.LabelConfigHash], Sources: d.sources,
			View: &ds[i].view, InPlace: inplace[d.agent.Name], AppliedInPlace: applied[d.agent.Name]}
	}
	warnings := planEgress(cfg, st, want)
	p := plan.Diff(cfg.Run.Name, want, actual)
	p.Warnings = warnings
	if ap, ok := readApplied(st); ok {
		p.RunChanges = plan.DiffRun(ap.Run, runView(cfg))
	}
	p.Warnings = append(p.Warnings, r.otherRunsOfFile(ctx, cfg, st)...)
	p.Warnings = append(p.Warnings, r.unwritableMounts(ctx, info, ds)...)
	return p, ds, nil
}

// AgentError says which agent failed and why.
type AgentError struct {
	Agent string
	Err   error
}

func (e *AgentError) Error() string { return e.Agent + ": " + e.Err.Error() }
func (e *AgentError) Unwrap() error { return e.Err }

// ApplyError lists the agents that failed; the others were applied.
type ApplyError struct {
	Failed []error // each an *AgentError
	Total  int
}

func (e *ApplyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d agents failed (the others are applied; fix the cause and apply again):", len(e.Failed), e.Total)
	for _, l := range groupErrors(e.Failed) { // one line per cause
		b.WriteString("\n  - " + l)
	}
	return b.String()
}

// Unwrap lets errors.As find each agent's error.
func (e *ApplyError) Unwrap() []error { return e.Failed }

// ApplyResult is what Apply did.
type ApplyResult struct {
	Plan plan.Plan
	// IDs maps each agent to its container after apply.
	IDs map[string]string
}

// Apply makes the engine match the config: it creates, replaces and deletes
// containers in parallel, verifying each created container against the
// security profile before starting it. A failing agent does not stop the
// others; the error names every agent that failed, and a re-apply converges.
func (r *Runner) Apply(ctx context.Context, cfg *config.Config) (ApplyResult, error) {
	ctx, unlock, err := r.lockRun(ctx, cfg.Run.Name, "apply", cfg.File)
	if err != nil {
		return ApplyResult{}, err
	}
	defer unlock()
	tr := newApplyTracker() // Ctrl-C: interrupt.go
	defer context.AfterFunc(ctx, func() { r.progress("%s", tr.line(context.Cause(ctx))) })()
	defer r.stopIfNothingRuns(ctx, cfg.Run.Name)
	info, err := r.Engine.Info(ctx)
	if err != nil {
		return ApplyResult{}, err
	}
	if err := Preflight(cfg, info); err != nil {
		return ApplyResult{}, err
	}
	// Secrets first: a source that cannot be read stops apply before
	// anything is created, and the stand-ins the specs hold are stored.
	st0, err := r.runState(cfg.Run.Name)
	if err != nil {
		return ApplyResult{}, err
	}
	secretsChanged, err := r.prepareSecrets(ctx, cfg, st0)
	if err != nil {
		return ApplyResult{}, err
	}
	p, ds, err := r.plan(ctx, cfg)
	if err != nil {
		return ApplyResult{}, err
	}
	if r.Approve != nil {
		if err := r.Approve(p); err != nil {
			return ApplyResult{Plan: p}, err
		}
	}
	st, err := r.runState(cfg.Run.Name)
	if err != nil {
		return ApplyResult{}, err
	}
	prev, _ := readApplied(st)
	briefs := map[string]string{}
	// The relay comes first: containers mount its directory and their
	// credentials, and their shims connect as soon as they start.
	changed, err := r.prepareRelay(cfg, st)
	if err != nil {
		return ApplyResult{}, fmt.Errorf("preparing run %q's state in %s: %w", cfg.Run.Name, st.Dir(), err)
	}
	// The egress rules before any service or container starts, so the
	// proxy never serves an agent with another config's rules.
	egressChanged, err := writeEgress(cfg, st)
	if err != nil {
		return ApplyResult{}, err
	}
	svcChanged, err := writeServicesConfig(st, info, cfg.File)
	if err != nil {
		return ApplyResult{}, err
	}
	if err := prepareEgressDirs(cfg, st); err != nil {
		return ApplyResult{}, fmt.Errorf("preparing run %q's egress socket directories in %s: %w", cfg.Run.Name, st.EgressDir(), err)
	}
	r.ownCredentials(ctx, st, info, ds)
	if err := r.writeFileSecrets(ctx, st, info, ds); err != nil {
		return ApplyResult{}, err
	}
	if err := r.prepareWorkspaces(ctx, cfg, st, info, ds, p); err != nil {
		return ApplyResult{}, fmt.Errorf("preparing run %q's workspaces: %w", cfg.Run.Name, err)
	}
	if r.Approve == nil {
		r.warnUnwritableMounts(ctx, info, ds) // else the plan shown said it
	}
	if err := r.ensureServices(ctx, st, changed || svcChanged || egressChanged || secretsChanged); err != nil {
		return ApplyResult{}, err
	}
	if err := waitEgressServed(ctx, st, egressFile(cfg)); err != nil {
		return ApplyResult{}, err
	}
	if p.Changes() {
		r.audit(st, "apply", cfg.Run.Name, p.Summary())
	}
	res := ApplyResult{Plan: p, IDs: map[string]string{}}
	specs := map[string]desiredAgent{}
	for _, d := range ds {
		specs[d.agent.Name] = d
	}
	accepted := map[string]bool{}
	for _, l := range cfg.Run.AcceptUnenforced {
		accepted[l] = true
	}

	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, r.parallelism())
	)
	for _, a := range p.Actions {
		if a.Kind == plan.Update {
			if !a.Egress.Empty() {
				r.audit(st, "egress_update", a.Agent, a.Egress.String())
				r.progress("%s: egress rules updated in place (%s)", a.Agent, a.Egress)
			}
			if other := nonEgress(a.Changes); other != "" {
				r.audit(st, "update", a.Agent, other)
				r.progress("%s: updated in place (%s)", a.Agent, other)
			}
		}
		if a.Kind == plan.Keep || a.Kind == plan.Update {
			d := specs[a.Agent]
			sha, known := prev.Briefs[a.Agent]
			var berr error
			switch {
			case !known:
				sha = briefSHA(d.agent.Brief) // first apply that records it
			case briefChanged(a.Changes):
				// The brief changed for a running agent: it gets the new
				// one as a message, as plan said.
				now := briefSHA(d.agent.Brief)
				if d.agent.Brief != "" {
					berr = r.sendBriefUpdate(ctx, st, a.Agent, a.Existing[0].ID, d.agent.Brief, now)
				}
				if berr == nil {
					sha = now
				}
			}
			mu.Lock()
			res.IDs[a.Agent] = a.Existing[0].ID
			briefs[a.Agent] = sha
			if berr != nil {
				errs = append(errs, &AgentError{Agent: a.Agent, Err: fmt.Errorf("its new brief was not accepted by the relay: %w", berr)})
			}
			mu.Unlock()
			continue
		}
		wg.Add(1)
		tr.queue(a.Agent)
		go func(a plan.Action) {
			defer wg.Done()
			// The slot bounds engine work; watching a started agent's
			// first second holds none (see execute).
			sem <- struct{}{}
			var once sync.Once
			release := func() { once.Do(func() { <-sem }) }
			defer release()
			if ctx.Err() != nil { // interrupted: start nothing more
				mu.Lock()
				errs = append(errs, &AgentError{Agent: a.Agent, Err: errNotStarted})
				mu.Unlock()
				return
			}
			tr.begin(a.Agent)
			defer tr.end(a.Agent)
			d := specs[a.Agent]
			id, err := r.execute(ctx, cfg, a, d, accepted, release)
			if err == nil && id != "" {
				r.nudgeRecorder(ctx, st) // record the new pane from its start
			}
			if err == nil && id != "" && d.agent.Brief != "" {
				if berr := r.sendBrief(ctx, st, a.Agent, id, d.agent.Brief); berr != nil {
					err = fmt.Errorf("started, but its brief was not accepted by the relay: %w", berr)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, &AgentError{Agent: a.Agent, Err: err})
				if sha, ok := prev.Briefs[a.Agent]; ok && a.Kind != plan.Delete {
					briefs[a.Agent] = sha
				}
				return
			}
			if id != "" {
				res.IDs[a.Agent] = id
				briefs[a.Agent] = briefSHA(d.agent.Brief)
			}
		}(a)
	}
	wg.Wait()
	if err := writeApplied(st, appliedFile{File: cfg.File, Engine: r.Engine.Describe(), EngineKind: cfg.Run.Engine, AppliedAt: time.Now().UTC(), Run: runView(cfg), Briefs: briefs}); err != nil {
		errs = append(errs, fmt.Errorf("recording what was applied in %s: %w (the next plan may show changes that were made)", appliedPath(st), err))
	}
	if ctx.Err() != nil {
		return res, r.interrupted(ctx, st, cfg.File, tr, p, res, errs)
	}
	if len(errs) > 0 {
		sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
		return res, &ApplyError{Failed: errs, Total: len(cfg.Agents)}
	}
	return res, nil
}

// removeParallelism bounds destroy's concurrent container removals, below
// apply's: Docker 20.10's libnetwork can deadlock when many containers exit
// at once (processEndpointDelete against getSvcRecords, moby/moby#46661,
// never fixed in 20.10), after which the daemon answers nothing; seen here
// removing 50 agents 16 at a time. Four at a time still removes 50 within
// the 10 s on an idle machine.
const removeParallelism = 4

func (r *Runner) parallelism() int {
	if r.Parallelism > 0 {
		return r.Parallelism
	}
	return 16
}

// Destroy removes every container of the run, stops its host services
// (relay, recorder) and waits for them, and removes
// its state (credentials, queue), keeping the audit log in the archive.
// Running it twice is fine. An agent's workspace is fetched into its
// repository first, or kept aside (see DestroyWith).
func (r *Runner) Destroy(ctx context.Context, run string) (int, error) {
	return r.DestroyWith(ctx, run, DestroyOptions{})
}

// DestroyWith is Destroy; unless opts.DiscardWork, no commit of an agent's
// workspace is thrown away: it is fetched first, or its clone is moved to
// STATE/kept/ and progress says where.
func (r *Runner) DestroyWith(ctx context.Context, run string, opts DestroyOptions) (int, error) {
	ctx, unlock, err := r.lockRun(ctx, run, "destroy", "")
	if err != nil {
		return 0, err
	}
	defer unlock()
	list, err := r.Engine.List(ctx, run)
	if err != nil {
		return 0, err
	}
	st, err := r.runState(run)
	if err != nil {
		return 0, err
	}
	if err := r.saveAllWork(ctx, st, list, opts); err != nil {
		return 0, err
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, removeParallelism)
	)
	for _, c := range list {
		wg.Add(1)
		go func(c engine.Container) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			r.progress("%s: destroying %s...", c.Agent, shortID(c.ID))
			if err := r.Engine.Remove(ctx, c.ID); err != nil {
				mu.Lock()
				errs = append(errs, &AgentError{Agent: c.Agent, Err: err})
				mu.Unlock()
			}
		}(c)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return len(list), err
	}
	if !st.Exists() {
		return len(list), nil
	}
	r.audit(st, "destroy", run, containersN(len(list))+" removed")
	r.stopServices(st)
	if err := removeFileSecrets(st); err != nil {
		r.log().Warn("cannot remove the run's file secrets", "error", err)
	}
	archived, err := st.Remove()
	if err != nil {
		return len(list), fmt.Errorf("removing run %q's state %s: %w", run, st.Dir(), err)
	}
	if archived != "" {
		r.progress("audit log kept at %s", archived)
	}
	return len(list), nil
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func since(t time.Time) string { return time.Since(t).Round(10 * time.Millisecond).String() }

// missingRuntimes names each runtime the agents ask for that the engine
// does not offer, so apply stops before creating anything rather than
// failing (or, worse, falling back) container by container.
func missingRuntimes(cfg *config.Config, info engine.Info) []string {
	var out []string
	seen := map[string]bool{}
	for _, a := range cfg.Agents {
		rt := a.Runtime
		if rt == "" || seen[rt] || slices.Contains(info.Runtimes, rt) {
			continue
		}
		seen[rt] = true
		hint := "register it with the engine"
		if rt == config.RuntimeRunsc {
			hint = "install gVisor (Debian: apt-get install runsc) and register it in /etc/docker/daemon.json, e.g. with scripts/gvisor-docker.sh"
		}
		out = append(out, fmt.Sprintf("agent %q asks for runtime %q, which %s %s does not offer (it offers %s): %s, or remove runtime from the config",
			a.Name, rt, info.Name, info.Endpoint, offered(info.Runtimes), hint))
	}
	return out
}

func offered(rts []string) string {
	if len(rts) == 0 {
		return "none it names"
	}
	return strings.Join(quote(rts), ", ")
}
