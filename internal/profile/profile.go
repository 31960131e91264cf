// Package profile turns a validated agent into the hardened container Spec
// (capabilities, seccomp, read-only root, tmpfs, limits) and checks what an
// engine actually created against it. The Spec is engine-neutral; each engine
// translates it, and Check is the fail-closed gate before a container starts
// (DESIGN.md invariants 1 and 2).
package profile

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"slices"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/image"
	"github.com/runner-dev/runner/internal/uids"
	"github.com/runner-dev/runner/policies"
)

// Fixed parts of every agent container.
const (
	// NamePrefix starts every container name: runner-<run>-<agent>.
	NamePrefix = "runner-"
)

// seccompJSON is the embedded profile in compact form, as Spec carries it.
var seccompJSON = mustCompact(policies.Seccomp)

func mustCompact(b []byte) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		// policies/seccomp.json is generated and tested; this is a build defect.
		panic("profile: embedded policies/seccomp.json is not valid JSON: " + err.Error())
	}
	return buf.String()
}

// Build turns one validated agent into the hardened container spec. runName
// is the run's name. a.User must be set: the file's, or the uid runner
// allocated for the agent (internal/uids); an empty one makes a spec that
// Check refuses, never the image's default user.
//
// Zero values in a (which config fills with defaults) are replaced by the
// config defaults here too, so that a zero never reaches an engine where it
// would mean "unlimited".
func Build(runName string, a config.Agent) engine.Spec {
	a = withDefaults(a)
	uid, gid, idsOK := uids.ParseUser(a.User)

	home := fmt.Sprintf("rw,nosuid,nodev,size=%d", a.HomeSize)
	if idsOK {
		home += fmt.Sprintf(",uid=%d,gid=%d", uid, gid)
	}
	// An unparsable user leaves /home/agent owned by root; Check rejects such
	// a user anyway (it cannot be proven non-root).
	home += ",mode=0700"

	var mounts []engine.Mount
	for _, m := range a.Mounts {
		mounts = append(mounts, engine.Mount{Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly})
	}

	s := engine.Spec{
		Name:       NamePrefix + runName + "-" + a.Name,
		Image:      a.Image,
		Entrypoint: []string{AgentBin(a.Runtime), "init", "--"},
		Cmd:        slices.Clone(a.Command),
		Env:        buildEnv(runName, a),
		User:       a.User,
		Workdir:    a.Workdir,
		Hostname:   a.Name,
		Labels: map[string]string{
			engine.LabelRun:   runName,
			engine.LabelAgent: a.Name,
			engine.LabelUser:  a.User,
		},

		CapDrop:         []string{"ALL"},
		NoNewPrivileges: true,
		SeccompJSON:     seccompJSON,
		ReadonlyRootfs:  true,
		Tmpfs: map[string]string{
			"/tmp":         fmt.Sprintf("rw,nosuid,nodev,size=%d,mode=1777", a.TmpSize),
			config.HomeDir: home,
		},
		Memory:    a.Memory,
		NanoCPUs:  a.NanoCPUs,
		PidsLimit: a.Pids,
		Network:   a.Network,
		Runtime:   a.Runtime,
		Mounts:    mounts,
		Init:      false, // runner-agent is PID 1
		Health:    healthCheck(AgentBin(a.Runtime)),

		MaskedPaths:   slices.Clone(MaskedPaths),
		ReadonlyPaths: slices.Clone(ReadonlyPaths),
	}
	s.Labels[engine.LabelConfigHash] = Hash(s)
	return s
}

// WithDefaults is a with the defaults Build gives its zero values (plan
// shows an agent's settings this way).
func WithDefaults(a config.Agent) config.Agent { return withDefaults(a) }

// AgentBin is where runner-agent is in the image for a container of this
// runtime. The shim is PID 1 and starts the agent's argv itself; no shell
// ever sees the command (invariant 3). runc runs the execute-only copy;
// gVisor cannot load a file it may not read, so it runs the readable one.
func AgentBin(runtime string) string {
	if runtime == config.RuntimeRunsc {
		return image.AgentPathReadable
	}
	return image.AgentPath
}

// defaultPath is the default image's PATH (internal/image's Dockerfile).
const defaultPath = "/usr/local/bin:/usr/bin:/bin"

func withDefaults(a config.Agent) config.Agent {
	if a.Image == "" {
		a.Image = config.DefaultImage
	}
	if a.Memory <= 0 {
		a.Memory = config.DefaultMemory
	}
	if a.NanoCPUs <= 0 {
		a.NanoCPUs = int64(config.DefaultCPUs * 1e9)
	}
	if a.Pids <= 0 {
		a.Pids = config.DefaultPids
	}
	if a.Network == "" {
		a.Network = config.DefaultNetwork
	}
	if a.Workdir == "" {
		a.Workdir = config.DefaultWorkdir
	}
	if a.TmpSize <= 0 {
		a.TmpSize = config.DefaultTmpSize
	}
	if a.HomeSize <= 0 {
		a.HomeSize = config.DefaultTmpSize // config has no separate home default; both are 64 MiB
	}
	if a.Restart == "" {
		a.Restart, a.MaxRestarts = config.DefaultRestart, config.DefaultMaxRestarts
	}
	return a
}

// EnvRestart carries the agent's restart policy to runner-agent init as
// POLICY:MAX_RESTARTS ("on-failure:5"); an environment variable, so no
// shell or extra argument is involved.
const EnvRestart = "RUNNER_RESTART"

// buildEnv returns the sorted KEY=VALUE environment. The agent's own
// variables may override LANG, LC_ALL and TERM; HOME and the RUNNER_*
// variables (identity, restart policy, egress) are always runner's, and so
// are the proxy variables of an agent with egress.
func buildEnv(runName string, a config.Agent) []string {
	env := map[string]string{
		"LANG":   "C.UTF-8",
		"LC_ALL": "C.UTF-8",
		"TERM":   "tmux-256color",
	}
	maps.Copy(env, a.Env)
	env["HOME"] = config.HomeDir
	env["RUNNER_RUN"] = runName
	env["RUNNER_AGENT"] = a.Name
	env[EnvRestart] = fmt.Sprintf("%s:%d", a.Restart, a.MaxRestarts)
	addEgressEnv(env, a)
	if a.Runtime == config.RuntimeRunsc {
		// The agent's own `runner-agent send` must find the copy gVisor
		// can run before the execute-only one.
		p := a.Env["PATH"]
		if p == "" {
			p = defaultPath
		}
		env["PATH"] = path.Dir(image.AgentPathReadable) + ":" + p
	}

	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

// Hash is the config hash stored in label runner.config-hash: the hex of the
// first 16 bytes of the sha256 of a canonical JSON encoding of s with Labels
// excluded. Struct fields encode in declaration order and map keys sorted;
// nil and empty slices and maps are treated alike. Any change to the Spec
// (including the seccomp profile or a new Spec field) changes the hash, so
// plan replaces the container.
func Hash(s engine.Spec) string {
	s.Labels = nil
	if len(s.Entrypoint) == 0 {
		s.Entrypoint = nil
	}
	if len(s.Cmd) == 0 {
		s.Cmd = nil
	}
	if len(s.Env) == 0 {
		s.Env = nil
	}
	if len(s.CapDrop) == 0 {
		s.CapDrop = nil
	}
	if len(s.Mounts) == 0 {
		s.Mounts = nil
	}
	if len(s.Tmpfs) == 0 {
		s.Tmpfs = nil
	}
	if len(s.MaskedPaths) == 0 {
		s.MaskedPaths = nil
	}
	if len(s.ReadonlyPaths) == 0 {
		s.ReadonlyPaths = nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		// Spec holds only strings, ints, bools, slices and string maps.
		panic("profile: encoding spec: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}
