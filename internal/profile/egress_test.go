package profile

import (
	"reflect"
	"strings"
	"testing"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/egress/rules"
	"github.com/runner-dev/runner/internal/engine"
)

// Egress rules are applied in place by the proxy, so they must not reach
// the container's spec nor its config hash: a change to them would replace
// the container.
func TestEgressRulesNotInSpec(t *testing.T) {
	a := config.Agent{Name: "eng", Command: []string{"claude"}, User: "40000:40000"}
	egress := func(allow ...string) *config.Egress {
		r, err := rules.Compile(allow, nil)
		if err != nil {
			t.Fatal(err)
		}
		return &config.Egress{Allow: allow, Rules: r}
	}
	a.Egress = egress("api.anthropic.com")
	one := Build("r", a)
	a.Egress = egress("api.anthropic.com", "pypi.org", "10.0.0.0/8:5432")
	two := Build("r", a)
	if Hash(one) != Hash(two) || !reflect.DeepEqual(one, two) {
		t.Errorf("changing the egress rules changed the spec:\n%+v\n%+v", one, two)
	}
}

// egressAgent is an agent with egress whose own env tries to set a proxy.
func egressAgent() config.Agent {
	return config.Agent{Name: "eng", Command: []string{"claude"}, User: "40000:40000",
		Env:    map[string]string{"HTTPS_PROXY": "http://evil.example:8080", "no_proxy": "*", "FOO": "bar"},
		Egress: &config.Egress{Allow: []string{"api.anthropic.com"}}}
}

func TestEgressEnv(t *testing.T) {
	s := Build("r", egressAgent())
	want := map[string]string{
		"HTTP_PROXY": "http://127.0.0.1:3128", "http_proxy": "http://127.0.0.1:3128",
		"HTTPS_PROXY": "http://127.0.0.1:3128", "https_proxy": "http://127.0.0.1:3128",
		"ALL_PROXY": "http://127.0.0.1:3128", "all_proxy": "http://127.0.0.1:3128",
		"NO_PROXY": "localhost,127.0.0.1", "no_proxy": "localhost,127.0.0.1",
		"RUNNER_EGRESS": "1", "FOO": "bar",
	}
	for k, v := range want {
		if got := envValue(s.Env, k); got != v {
			t.Errorf("%s = %q, want %q (env %q)", k, got, v, s.Env)
		}
	}
	if !HasEgress(s) {
		t.Error("HasEgress is false for an agent with egress")
	}

	// Without egress: none of runner's proxy variables, the agent's own
	// are left alone.
	a := egressAgent()
	a.Egress = nil
	s = Build("r", a)
	if HasEgress(s) {
		t.Error("HasEgress is true for an agent without egress")
	}
	for _, kv := range s.Env {
		k, v, _ := strings.Cut(kv, "=")
		if (strings.Contains(strings.ToLower(k), "proxy") || k == EnvEgress) && a.Env[k] != v {
			t.Errorf("agent without egress got %s", kv)
		}
	}
	if envValue(s.Env, "HTTPS_PROXY") != "http://evil.example:8080" {
		t.Errorf("an agent without egress lost its own HTTPS_PROXY: %q", s.Env)
	}
}

// Gaining or losing egress changes the spec (a replace); the rules do not
// (TestEgressRulesNotInSpec).
func TestEgressIsInHash(t *testing.T) {
	a := egressAgent()
	with := Build("r", a)
	a.Egress = nil
	without := Build("r", a)
	if Hash(with) == Hash(without) {
		t.Error("gaining egress did not change the config hash")
	}
}

func TestCheckEgressMount(t *testing.T) {
	const dir = "/state/runs/r/egress/eng"
	spec := func(egress bool) engine.Spec {
		a := egressAgent()
		if !egress {
			a.Egress = nil
		}
		s := Build("r", a)
		if egress {
			s.Mounts = append(s.Mounts, EgressMount(dir))
		}
		return s
	}
	good := EgressMount(dir)
	rw := good
	rw.ReadOnly = false
	other := EgressMount("/state/runs/r/egress/ops")
	elsewhere := EgressMount("/state/runs/r/relay/eng")
	below := engine.Mount{Source: "/home/op/x", Target: EgressTarget + "/proxy.sock", ReadOnly: true}

	for _, c := range []struct {
		name   string
		egress bool
		want   []engine.Mount // nil: what the spec says
		got    []engine.Mount
		bad    bool
	}{
		{name: "with egress, as specified", egress: true, got: []engine.Mount{good}},
		{name: "without egress, none", egress: false},
		{name: "with egress, missing", egress: true, bad: true},
		{name: "with egress, writable", egress: true, want: []engine.Mount{rw}, got: []engine.Mount{rw}, bad: true},
		{name: "another agent's directory", egress: true, want: []engine.Mount{other}, got: []engine.Mount{other}, bad: true},
		{name: "not an egress directory", egress: true, want: []engine.Mount{elsewhere}, got: []engine.Mount{elsewhere}, bad: true},
		{name: "something mounted below it", egress: true, want: []engine.Mount{good, below}, got: []engine.Mount{good, below}, bad: true},
		{name: "twice", egress: true, want: []engine.Mount{good, good}, got: []engine.Mount{good, good}, bad: true},
		{name: "without egress, present", egress: false, want: []engine.Mount{good}, got: []engine.Mount{good}, bad: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := spec(false)
			s.Env = spec(c.egress).Env
			// A faulty want (the mount in the spec) must not make these pass.
			s.Mounts = append(s.Mounts, c.want...)
			if c.want == nil && c.egress {
				s.Mounts = spec(true).Mounts
			}
			o := observed(s)
			o.Mounts = append(observed(spec(false)).Mounts, c.got...)
			var egressVs []Violation
			for _, v := range Check(s, o) {
				if v.Setting == "Mounts["+EgressTarget+"]" || strings.HasPrefix(v.Setting, "Mounts["+EgressTarget+"/") {
					egressVs = append(egressVs, v)
				}
			}
			if c.bad && len(egressVs) == 0 {
				t.Errorf("no violation for %v", c.got)
			}
			if !c.bad && len(egressVs) > 0 {
				t.Errorf("violations for a correct mount: %v", egressVs)
			}
		})
	}
}
