package runner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/plan"
	"github.com/runner-dev/runner/internal/state"
	"github.com/runner-dev/runner/internal/termsafe"
	"github.com/runner-dev/runner/internal/workspace"
)

// wantWorkspace is an agent's workspace as apply makes it.
type wantWorkspace struct {
	rec workspace.Record // Repo, Ref, Base, Path, Branch
	dir string           // the clone on the host
}

// wantWorkspaceOf is the clone the agent's workspace block asks for (its
// mount is in buildSpec), and what the container's hash must cover: the
// repository and ref (another of either needs another clone, which only a
// new container mounts). Nothing is created here: plan calls it too.
func wantWorkspaceOf(st state.Run, run string, a config.Agent, repo, base string) (*wantWorkspace, string) {
	w := a.Workspace
	if w == nil {
		return nil, ""
	}
	ws := &wantWorkspace{
		rec: workspace.Record{Repo: repo, Ref: w.Ref, Base: base, Path: w.Path, Branch: workspace.Branch(run, a.Name)},
		dir: workspace.CloneDir(st, a.Name),
	}
	return ws, "\x00workspace\x00" + ws.rec.Key()
}

// workspaceBases resolves every workspace's repository and ref (the host
// repositories only), failing before anything is created.
func workspaceBases(ctx context.Context, cfg *config.Config, srcs *config.Sources) (map[string]string, error) {
	bases, diags := workspace.Check(ctx, cfg, srcs)
	if diags.HasErrors() {
		return nil, &config.SourceError{Diags: diags}
	}
	return bases, nil
}

// prepareWorkspaces is apply's step before any container is created: each
// agent with a workspace gets its clone, unless the one it has was made
// from the same repository and ref (its work is kept, also across
// container replacements). A clone that is to be replaced, or whose agent
// lost its workspace, has its work fetched into its repository first, or
// is kept aside when that fails.
func (r *Runner) prepareWorkspaces(ctx context.Context, cfg *config.Config, st state.Run, info engine.Info, ds []desiredAgent, p plan.Plan) error {
	recs, err := workspace.Load(st)
	if err != nil {
		return err
	}
	want := map[string]desiredAgent{}
	for _, d := range ds {
		if d.workspace != nil {
			want[d.agent.Name] = d
		}
	}
	if len(want) == 0 && len(recs) == 0 {
		return nil
	}
	if err := workspace.MakeDir(st); err != nil {
		return err
	}
	existing := map[string]engine.Container{}
	for _, a := range p.Actions {
		for _, c := range a.Existing {
			existing[a.Agent] = c
		}
	}
	// Old clones first: one whose agent no longer has it, or has another.
	for agent, rec := range recs {
		d, ok := want[agent]
		if ok && d.workspace.rec.Key() == rec.Key() {
			if _, err := os.Lstat(workspace.CloneDir(st, agent)); err == nil {
				continue
			}
		}
		c, running := existing[agent]
		if err := r.saveWork(ctx, st, agent, rec, c, running && c.State == "running", "its workspace changed"); err != nil {
			return err
		}
		if err := workspace.Update(st, func(rs workspace.Records) error { delete(rs, agent); return nil }); err != nil {
			return err
		}
	}
	recs, err = workspace.Load(st)
	if err != nil {
		return err
	}
	var todo []string
	for agent := range want {
		if rec, ok := recs[agent]; ok {
			if rec.Path != want[agent].workspace.rec.Path {
				if err := workspace.Update(st, func(rs workspace.Records) error {
					r := rs[agent]
					r.Path = want[agent].workspace.rec.Path
					rs[agent] = r
					return nil
				}); err != nil {
					return err
				}
			}
			continue
		}
		todo = append(todo, agent)
	}
	if len(todo) == 0 {
		return nil
	}
	ih, err := engineIDs(ctx, r.Engine, info, st.Name)
	if err != nil {
		return fmt.Errorf("workspaces: %w", err)
	}
	sort.Strings(todo)
	var mu sync.Mutex
	var errs []error
	r.forEach(todo, func(agent string) {
		err := r.makeClone(ctx, st, cfg.Run.Name, want[agent], ih)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, &AgentError{Agent: agent, Err: err})
		}
	})
	if len(errs) > 0 {
		sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
		return errors.Join(errs...)
	}
	return nil
}

// makeClone clones one agent's workspace and records it.
func (r *Runner) makeClone(ctx context.Context, st state.Run, run string, d desiredAgent, ih idHost) error {
	ws := d.workspace
	_, _, hu, hg, ok := ih.hostIDs(d.spec.User)
	if !ok {
		return fmt.Errorf("cannot tell which host uid the agent's user %q is, so its clone cannot be given to it", d.spec.User)
	}
	if os.Geteuid() != 0 && (int(hu) != os.Geteuid() || int(hg) != os.Getegid()) {
		return fmt.Errorf("its clone must belong to its host uid %d, and only root can give files away: run runner as root (sudo), or set user to your own uid on this agent (rootful engine only)", hu)
	}
	if _, err := os.Lstat(ws.dir); err == nil {
		// A clone nobody recorded (the records were lost): keep its work.
		kept, err := workspace.Keep(st, d.agent.Name)
		if err != nil {
			return fmt.Errorf("an unrecorded clone is in the way at %s and cannot be moved: %w", ws.dir, err)
		}
		r.progress("%s: an earlier clone nobody recorded was kept at %s", d.agent.Name, kept)
	}
	start := time.Now()
	r.progress("%s: cloning %s at %s (%s) for its workspace...", d.agent.Name, ws.rec.Repo, orHEAD(ws.rec.Ref), ws.rec.Base[:12])
	err := workspace.Clone(ctx, workspace.CloneOptions{
		Repo: ws.rec.Repo, Base: ws.rec.Base, Branch: ws.rec.Branch, Dir: ws.dir,
		Name: d.agent.Name, Email: d.agent.Name + "@" + run + ".runner.invalid",
		UID: int(hu), GID: int(hg),
	})
	if err != nil {
		return err
	}
	rec := ws.rec
	rec.Created = time.Now().UTC()
	if err := workspace.Update(st, func(rs workspace.Records) error { rs[d.agent.Name] = rec; return nil }); err != nil {
		return err
	}
	r.audit(st, "workspace_clone", d.agent.Name, fmt.Sprintf("%s at %s (%s) on branch %s", ws.rec.Repo, orHEAD(ws.rec.Ref), ws.rec.Base, ws.rec.Branch))
	r.progress("%s: workspace ready on branch %s after %s", d.agent.Name, ws.rec.Branch, since(start))
	return nil
}

func orHEAD(ref string) string {
	if ref == "" {
		return "HEAD"
	}
	return ref
}

// saveWork brings an agent's work out of a clone that is about to go
// (why): it fetches it into the repository when the container runs and
// nothing is left uncommitted, and otherwise moves the clone out of the
// run's state and says where.
func (r *Runner) saveWork(ctx context.Context, st state.Run, agent string, rec workspace.Record, c engine.Container, running bool, why string) error {
	if _, err := os.Lstat(workspace.CloneDir(st, agent)); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	reason := "its container is not running, so its git cannot be asked"
	if running {
		res, ferr := r.fetchFrom(ctx, st, agent, rec, c)
		if ferr == nil {
			state, serr := r.inspectClone(ctx, c, rec)
			switch {
			case serr != nil:
				reason = "fetched its commits, but could not tell whether it left changes uncommitted: " + serr.Error()
			case state.Dirty:
				reason = "fetched its commits, but it has changes it did not commit"
			default:
				r.progress("%s: %s: fetched its work into %s (%s) first", agent, why, rec.Repo, headsSummary(res.Heads))
				return os.RemoveAll(workspace.CloneDir(st, agent))
			}
		} else {
			reason = "fetching it failed: " + ferr.Error()
		}
	}
	kept, err := workspace.Keep(st, agent)
	if err != nil {
		return fmt.Errorf("%s: %s, and its clone cannot be kept aside (%v): nothing was removed; run again with --discard-work to throw it away", agent, reason, err)
	}
	r.audit(st, "workspace_kept", agent, kept)
	r.progress("%s: %s: %s; its clone is kept at %s (the agent wrote it: do not run git there on this host; copy what you need)", agent, why, reason, kept)
	return nil
}

func headsSummary(h map[string]string) string {
	if len(h) == 0 {
		return "no branches"
	}
	var refs []string
	for ref := range h {
		refs = append(refs, termsafe.Line(ref))
	}
	sort.Strings(refs)
	if len(refs) > 3 {
		return strings.Join(refs[:3], ", ") + fmt.Sprintf(" and %d more", len(refs)-3)
	}
	return strings.Join(refs, ", ")
}

// FetchReport is what fetch brought from one agent.
type FetchReport struct {
	Agent   string            `json:"agent"`
	Repo    string            `json:"repo"`
	Heads   map[string]string `json:"heads"`
	Changed []string          `json:"changed"`
	Error   string            `json:"error,omitempty"`
}

// Fetch brings the commits of agents (all with a workspace when none is
// named) into their repositories as refs/runner/RUN/AGENT/*. One agent's
// failure does not stop the others; the error lists them.
func (r *Runner) Fetch(ctx context.Context, cfg *config.Config, agents []string) ([]FetchReport, error) {
	ctx, unlock, err := r.lockRun(ctx, cfg.Run.Name, "fetch", cfg.File)
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := r.runState(cfg.Run.Name)
	if err != nil {
		return nil, err
	}
	recs, err := workspace.Load(st)
	if err != nil {
		return nil, err
	}
	if len(agents) == 0 {
		for a := range recs {
			agents = append(agents, a)
		}
		sort.Strings(agents)
		if len(agents) == 0 {
			return nil, fmt.Errorf("run %q has no workspace to fetch from: give an agent a workspace block and apply", cfg.Run.Name)
		}
	}
	var out []FetchReport
	var errs []error
	for _, agent := range agents {
		if err := CheckAgent(cfg, agent); err != nil {
			return nil, err
		}
		rec, ok := recs[agent]
		if !ok {
			return nil, fmt.Errorf("agent %q has no workspace in run %q (give it a workspace block and apply)", agent, cfg.Run.Name)
		}
		rep := FetchReport{Agent: agent, Repo: rec.Repo}
		c, err := r.container(ctx, cfg, agent)
		var res workspace.FetchResult
		if err == nil {
			res, err = r.fetchFrom(ctx, st, agent, rec, c)
		}
		if err != nil {
			rep.Error = err.Error()
			errs = append(errs, &AgentError{Agent: agent, Err: err})
		} else {
			rep.Heads, rep.Changed = res.Heads, res.Changed
		}
		out = append(out, rep)
	}
	return out, errors.Join(errs...)
}

// fetchFrom fetches from the agent's running container c, and records it.
func (r *Runner) fetchFrom(ctx context.Context, st state.Run, agent string, rec workspace.Record, c engine.Container) (workspace.FetchResult, error) {
	obs, err := r.Engine.Inspect(ctx, c.ID)
	if err != nil {
		return workspace.FetchResult{}, err
	}
	if _, err := nonRootUser(obs.User); err != nil {
		return workspace.FetchResult{}, err
	}
	info, err := r.Engine.Info(ctx)
	if err != nil {
		return workspace.FetchResult{}, err
	}
	max, err := workspace.MaxFetch()
	if err != nil {
		return workspace.FetchResult{}, err
	}
	prog, err := r.program()
	if err != nil {
		return workspace.FetchResult{}, err
	}
	proxy := append(slices.Clone(prog), "__fetch-pack-proxy", info.Name, info.Endpoint, c.ID, obs.User, rec.Path, strconv.FormatInt(max, 10))
	var env []string
	for _, k := range []string{"DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY", "DOCKER_API_VERSION", "RUNNER_STATE_DIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	res, err := workspace.Fetch(ctx, workspace.FetchOptions{Repo: rec.Repo, Run: st.Name, Agent: agent, Proxy: proxy, Env: env})
	if err != nil {
		r.audit(st, "workspace_fetch", agent, "refused: "+termsafe.Line(err.Error()))
		return res, err
	}
	now := time.Now().UTC()
	if err := workspace.Update(st, func(rs workspace.Records) error {
		if x, ok := rs[agent]; ok {
			x.Fetched, x.Heads = &now, res.Heads
			rs[agent] = x
		}
		return nil
	}); err != nil {
		return res, err
	}
	r.audit(st, "workspace_fetch", agent, fmt.Sprintf("%d refs into %s, %d changed", len(res.Heads), rec.Repo, len(res.Changed)))
	return res, nil
}

// inspectClone asks git in the agent's container about its clone.
func (r *Runner) inspectClone(ctx context.Context, c engine.Container, rec workspace.Record) (workspace.State, error) {
	obs, err := r.Engine.Inspect(ctx, c.ID)
	if err != nil {
		return workspace.State{}, err
	}
	return workspace.Inspect(ctx, r.Engine, c.ID, obs.User, rec.Path, rec.Base)
}

// Diff is what the agent changed against its starting point, from the
// refs fetch brought into the repository: `git diff` (or --stat) run by
// the host's git in the operator's repository, with no external diff or
// textconv program. The text is the agent's: print it through termsafe.
func (r *Runner) Diff(ctx context.Context, cfg *config.Config, agent string, stat bool) (string, error) {
	if err := CheckAgent(cfg, agent); err != nil {
		return "", err
	}
	st, err := r.runState(cfg.Run.Name)
	if err != nil {
		return "", err
	}
	recs, err := workspace.Load(st)
	if err != nil {
		return "", err
	}
	rec, ok := recs[agent]
	if !ok {
		return "", fmt.Errorf("agent %q has no workspace in run %q", agent, cfg.Run.Name)
	}
	return workspace.Diff(ctx, rec.Repo, rec.Base, workspace.RefPrefix(cfg.Run.Name, agent)+rec.Branch, stat, cfg.File, agent)
}

// WorkspaceStatus is an agent's workspace in status.
type WorkspaceStatus struct {
	Repo    string     `json:"repo"`
	Branch  string     `json:"branch"` // as the agent's git reports it
	Base    string     `json:"base"`
	Ahead   *int       `json:"ahead,omitempty"`
	Dirty   *bool      `json:"dirty,omitempty"`
	Fetched *time.Time `json:"last_fetched,omitempty"`
	Error   string     `json:"error,omitempty"`
}

// workspaceStatus fills each agent's workspace: the host's record, and
// what git in its running container says (each in its own time bound).
func (r *Runner) workspaceStatus(ctx context.Context, run string, list []engine.Container) map[string]*WorkspaceStatus {
	st, err := r.runState(run)
	if err != nil {
		return nil
	}
	recs, err := workspace.Load(st)
	if err != nil || len(recs) == 0 {
		return nil
	}
	byAgent := map[string]engine.Container{}
	for _, c := range list {
		byAgent[c.Agent] = c
	}
	out := map[string]*WorkspaceStatus{}
	var mu sync.Mutex
	var agents []string
	for a := range recs {
		agents = append(agents, a)
	}
	r.forEach(agents, func(a string) {
		rec := recs[a]
		ws := &WorkspaceStatus{Repo: rec.Repo, Branch: rec.Branch, Base: rec.Base, Fetched: rec.Fetched}
		if c, ok := byAgent[a]; ok && c.State == "running" {
			s, err := r.inspectClone(ctx, c, rec)
			if err != nil {
				ws.Error = termsafe.Line(err.Error())
			} else {
				ws.Branch, ws.Ahead, ws.Dirty = s.Branch, &s.Ahead, &s.Dirty
			}
		}
		mu.Lock()
		out[a] = ws
		mu.Unlock()
	})
	return out
}

// DestroyOptions tunes DestroyWith.
type DestroyOptions struct {
	// DiscardWork throws away the agents' clones without fetching them.
	DiscardWork bool
}

// saveAllWork is destroy's first step: every clone's work is fetched, or
// the clone kept aside, before any container goes (fetch needs it).
func (r *Runner) saveAllWork(ctx context.Context, st state.Run, list []engine.Container, opts DestroyOptions) error {
	if !st.Exists() {
		return nil
	}
	recs, err := workspace.Load(st)
	if err != nil || len(recs) == 0 {
		return err
	}
	if opts.DiscardWork {
		for a := range recs {
			r.progress("%s: discarding its workspace (--discard-work)", a)
		}
		return nil
	}
	byAgent := map[string]engine.Container{}
	for _, c := range list {
		byAgent[c.Agent] = c
	}
	var agents []string
	for a := range recs {
		agents = append(agents, a)
	}
	sort.Strings(agents)
	var errs []error
	for _, a := range agents {
		c, ok := byAgent[a]
		if err := r.saveWork(ctx, st, a, recs[a], c, ok && c.State == "running", "destroying"); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
