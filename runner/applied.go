package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/plan"
	"github.com/runner-dev/runner/internal/profile"
	"github.com/runner-dev/runner/internal/relay"
	"github.com/runner-dev/runner/internal/state"
)

// What plan compares with, and where it lives:
//   - an agent's container settings: the runner.agent-config label of its
//     container (plan.View), written at create: what is deployed;
//   - its relay ACL and check-ins: the run's private/relay.json, which the
//     relay serves;
//   - its brief, the run settings, and where the file was: private/applied.json
//     (appliedFile), written at the end of every apply.

// appliedFile is private/applied.json.
type appliedFile struct {
	// File is the config file last applied (absolute), for `runner ls`.
	File   string `json:"file"`
	Engine string `json:"engine"`
	// EngineKind is the run block's engine ("docker", "containerd"):
	// --run NAME connects to it.
	EngineKind string    `json:"engine_kind,omitempty"`
	AppliedAt  time.Time `json:"applied_at"`
	Run        plan.RunView
	// Briefs maps each agent to the sha256 of the brief it was last given
	// ("" none).
	Briefs map[string]string `json:"briefs"`
}

func appliedPath(st state.Run) string { return filepath.Join(st.Private(), "applied.json") }

// readApplied reads the run's applied.json; ok is false when there is none
// (never applied with this runner, or destroyed).
func readApplied(st state.Run) (appliedFile, bool) {
	b, err := os.ReadFile(appliedPath(st))
	if err != nil {
		return appliedFile{}, false
	}
	var f appliedFile
	if json.Unmarshal(b, &f) != nil {
		return appliedFile{}, false
	}
	return f, true
}

func writeApplied(st state.Run, f appliedFile) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return st.WriteFile(appliedPath(st), b, 0o600)
}

func briefSHA(brief string) string {
	if brief == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(brief))
	return hex.EncodeToString(sum[:])
}

func runView(cfg *config.Config) plan.RunView {
	acc := slices.Clone(cfg.Run.AcceptUnenforced)
	slices.Sort(acc)
	return plan.RunView{RequireRootless: cfg.Run.RequireRootless, AcceptUnenforced: acc}
}

// viewOf is the plan view of an agent whose user and mount sources are
// resolved, with the defaults the container gets.
//
// Secrets appear by binding only (their stand-ins are added to the spec
// after this view). HOOK: an environment value that comes from a
// sensitive variable must be replaced by plan.Sensitive here, so that it
// reaches neither the container's label nor any plan output.
func viewOf(a config.Agent, imageID string) plan.View {
	a = profile.WithDefaults(a)
	v := plan.View{
		Image: a.Image, ImageID: imageID, Command: slices.Clone(a.Command), User: a.User,
		Memory: a.Memory, NanoCPUs: a.NanoCPUs, Pids: a.Pids, Network: a.Network, Workdir: a.Workdir,
		TmpSize: a.TmpSize, HomeSize: a.HomeSize, Restart: a.Restart, MaxRestarts: a.MaxRestarts,
	}
	if len(a.Env) > 0 {
		v.Env = map[string]string{}
		for k, val := range a.Env {
			v.Env[k] = val
		}
	}
	for _, m := range a.Mounts {
		v.Mounts = append(v.Mounts, plan.MountView{Target: m.Target, Source: m.Source, ReadOnly: m.ReadOnly})
	}
	// A secret by its binding only: its value (and stand-in) never.
	for _, s := range a.Secrets {
		if v.Secrets == nil {
			v.Secrets = map[string]string{}
		}
		v.Secrets[s.Name] = strings.TrimPrefix(s.Binding(), "secret "+s.Name+" ")
	}
	return v
}

// inPlaceOf is what the relay and the brief should hold for agent a.
func inPlaceOf(cfg *config.Config, a config.Agent) plan.InPlace {
	ip := plan.InPlace{SendTo: cfg.Peers(a.Name), BriefSHA: briefSHA(a.Brief)}
	for _, c := range a.Checkins {
		ip.Checkins = append(ip.Checkins, plan.CheckinText(c.Every, c.AfterIdle, c.Message))
	}
	return ip
}

// appliedInPlace is what the run's state holds for each agent from the last
// apply: nil for all when the relay's config is not there (never applied
// here). A brief not recorded (a run applied before applied.json) counts
// as unchanged.
func appliedInPlace(st state.Run, want map[string]plan.InPlace) (map[string]*plan.InPlace, error) {
	b, err := os.ReadFile(st.RelayConfig())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rf relayFile
	if err := json.Unmarshal(b, &rf); err != nil {
		return nil, nil // apply rewrites it
	}
	ap, _ := readApplied(st)
	out := map[string]*plan.InPlace{}
	for agent, now := range want {
		ip := &plan.InPlace{SendTo: rf.ACL[agent], BriefSHA: now.BriefSHA}
		if ip.SendTo == nil {
			ip.SendTo = []string{}
		}
		if sha, ok := ap.Briefs[agent]; ok {
			ip.BriefSHA = sha
		}
		for _, c := range rf.Checkins {
			if c.Agent == agent {
				ip.Checkins = append(ip.Checkins, plan.CheckinText(c.Every, c.AfterIdle, c.Message))
			}
		}
		out[agent] = ip
	}
	return out, nil
}

// nonEgress is an update's changes other than egress, as one line.
func nonEgress(cs []plan.Change) string {
	var parts []string
	for _, c := range cs {
		if !strings.HasPrefix(c.Attr, "egress.") {
			parts = append(parts, c.String())
		}
	}
	return strings.Join(parts, "; ")
}

func briefChanged(cs []plan.Change) bool {
	return slices.ContainsFunc(cs, func(c plan.Change) bool { return c.Attr == "brief" })
}

// sendBriefUpdate gives a running agent its changed brief; the client id
// names the brief, so a repeated apply does not send it twice.
func (r *Runner) sendBriefUpdate(ctx context.Context, st state.Run, agent, containerID, brief, sha string) error {
	c, err := r.operatorClient(ctx, st)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.SendMessage(relay.Message{To: agent, Body: brief, Kind: "brief", ClientID: "brief-" + shortID(containerID) + "-" + sha[:12]})
	return err
}

// EngineOf is the engine kind the run was last applied on from this host
// ("docker" when unknown), so a command given --run NAME talks to it.
func EngineOf(run string) string {
	st, err := state.ForRun(run)
	if err != nil {
		return "docker"
	}
	if ap, ok := readApplied(st); ok && ap.EngineKind != "" {
		return ap.EngineKind
	}
	return "docker"
}
