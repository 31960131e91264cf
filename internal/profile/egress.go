package profile

import (
	"path"
	"strings"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/engine"
)

// An agent with egress (config.Agent.Egress != nil) stays on network none.
// Its container gets its own proxy socket's directory, read-only, at
// EgressTarget, and runner-agent init forwards 127.0.0.1:3128 (the
// container's own loopback) to that socket. The agent's environment points
// HTTP clients at the forwarder. None of this depends on the rules, which
// the proxy applies in place: only on whether the agent has egress.
const (
	// EgressTarget holds the agent's proxy socket and nothing else.
	EgressTarget = config.EgressDir
	// EgressSocket is the socket runner-agent forwards to
	// (shim.DefaultEgressSocket).
	EgressSocket = EgressTarget + "/proxy.sock"
	// EgressListen is the forwarder's address in the container
	// (shim.DefaultEgressListen).
	EgressListen = "127.0.0.1:3128"
	// EnvEgress set to "1" tells runner-agent init to start the forwarder.
	// RUNNER_* names are runner's: a config cannot set them.
	EnvEgress = "RUNNER_EGRESS"
	// egressSourceDir is the base name of the state directory holding
	// every agent's socket directory (state.Run.EgressDir).
	egressSourceDir = "egress"
)

// ProxyURL is what the proxy variables say.
const ProxyURL = "http://" + EgressListen

// egressEnv are the variables an agent with egress gets, both spellings:
// curl reads the lower-case ones (and ALL_PROXY), most others either.
// They override the agent's own env of the same names: with egress, the
// forwarder is the only way out, so any other proxy would just fail.
var egressEnv = map[string]string{
	"HTTP_PROXY":  ProxyURL,
	"HTTPS_PROXY": ProxyURL,
	"ALL_PROXY":   ProxyURL,
	"NO_PROXY":    "localhost,127.0.0.1",
	EnvEgress:     "1",
}

// addEgressEnv sets the proxy variables in env when a has egress.
func addEgressEnv(env map[string]string, a config.Agent) {
	if a.Egress == nil {
		return
	}
	for k, v := range egressEnv {
		env[k] = v
		if k != EnvEgress {
			env[strings.ToLower(k)] = v
		}
	}
}

// HasEgress reports whether spec is that of an agent with egress.
func HasEgress(spec engine.Spec) bool {
	return envValue(spec.Env, EnvEgress) == "1"
}

func envValue(env []string, key string) string {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// EgressMount is the mount of agent's proxy socket directory, dir being
// state.Run.EgressAgentDir(agent).
func EgressMount(dir string) engine.Mount {
	return engine.Mount{Source: dir, Target: EgressTarget, ReadOnly: true}
}

// checkEgress holds the egress mount to absolute rules, whatever want says
// about mounts: present exactly when the spec gives the agent egress,
// exactly one, read-only, at the target itself (nothing mounted below it
// could add a socket), and from this agent's own socket directory. The
// environment the forwarder needs is covered by the config hash; the mount
// is what would hand an agent another agent's identity, or a writable
// place beside its socket.
func checkEgress(want engine.Spec, got []engine.Mount) []Violation {
	var vs []Violation
	add := func(w, g string) {
		vs = append(vs, Violation{Setting: "Mounts[" + EgressTarget + "]", Want: w, Got: g})
	}
	agent := want.Labels[engine.LabelAgent]
	wantSource := "a directory " + egressSourceDir + "/" + agent + " of runner's state, read-only"
	var at []engine.Mount
	for _, m := range got {
		t := path.Clean("/" + m.Target)
		if t == EgressTarget || strings.HasPrefix(t, EgressTarget+"/") {
			at = append(at, m)
		}
	}
	if !HasEgress(want) {
		for _, m := range at {
			add("absent (the agent has no egress)", formatMount(m))
		}
		return vs
	}
	if len(at) == 0 {
		add(wantSource, "absent")
	}
	for _, m := range at {
		src := path.Clean(m.Source)
		ok := m.Target == EgressTarget && m.ReadOnly && agent != "" &&
			path.Base(src) == agent && path.Base(path.Dir(src)) == egressSourceDir
		if !ok || len(at) > 1 {
			add(wantSource, formatMount(m))
		}
	}
	return vs
}
