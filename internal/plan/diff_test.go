package plan

import (
	"strings"
	"testing"

	"github.com/runner-dev/runner/internal/engine"
)

func baseView() View {
	return View{
		Image: "localhost/runner-agent:latest", ImageID: "sha256:aaaaaaaaaaaaaaaaaaaa", Command: []string{"claude", "--model", "sonnet"},
		Env: map[string]string{"MODE": "dev"}, User: "40000:40000", Memory: 256 << 20, NanoCPUs: 1e9, Pids: 256,
		Network: "none", Workdir: "/home/agent", TmpSize: 64 << 20, HomeSize: 64 << 20, Restart: "on-failure", MaxRestarts: 5,
		Mounts: []MountView{{Target: "/src", Source: "/home/u/src", ReadOnly: true}},
	}
}

// deployed is a running container created from v.
func deployed(agent, hash string, v View) engine.Container {
	c := ctr(agent, hash, "running")
	c.Labels = map[string]string{engine.LabelAgentConfig: EncodeView(v)}
	return c
}

func TestViewLabelRoundTrip(t *testing.T) {
	v := baseView()
	got, ok := DecodeView(EncodeView(v))
	if !ok || got.Memory != v.Memory || got.Mounts[0] != v.Mounts[0] || got.Env["MODE"] != "dev" || len(got.Command) != 3 {
		t.Errorf("round trip: %+v %v", got, ok)
	}
	for _, bad := range []string{"", "{}", "v1:not json", "v2:{}"} {
		if _, ok := DecodeView(bad); ok {
			t.Errorf("DecodeView(%q) accepted", bad)
		}
	}
}

// Every setting of the container shows as its own line, forces the
// replacement, and the ones that widen what the agent can do are marked.
func TestPlanShowsAttributeChangesAndWhatWeakens(t *testing.T) {
	was, now := baseView(), baseView()
	now.Memory = 512 << 20
	now.Command = []string{"claude", "--model", "opus"}
	now.Network = "bridge"
	now.Pids = 128 // smaller: not a weakening
	now.Env = map[string]string{"MODE": "prod", "NEW": "1"}
	now.Mounts = append(now.Mounts, MountView{Target: "/data", Source: "/srv/data"})
	p := Diff("demo", []Desired{{Agent: "alice", Hash: "new", View: &now}}, []engine.Container{deployed("alice", "old", was)})
	if len(p.Actions) != 1 || p.Actions[0].Kind != Replace {
		t.Fatalf("want one replace:\n%s", p)
	}
	out := p.String()
	for _, line := range []string{
		"  -/+ replace  alice  (forces replacement: command, env.MODE, env.NEW, memory, pids, network, mount /data)\n",
		`        ~ command: ["claude", "--model", "sonnet"] -> ["claude", "--model", "opus"]  # forces replacement` + "\n",
		`        ~ env.MODE: "dev" -> "prod"  # forces replacement` + "\n",
		`        + env.NEW: "1"  # forces replacement` + "\n",
		`    !   ~ memory: "256MiB" -> "512MiB"  # forces replacement` + "\n",
		"          weakens isolation: alice may use more memory (a larger memory limit)\n",
		`        ~ pids: "256" -> "128"  # forces replacement` + "\n",
		`    !   ~ network: "none" -> "bridge"  # forces replacement` + "\n",
		"          weakens isolation: alice can reach any address directly",
		`    !   + mount /data: "/srv/data" (read-write)  # forces replacement` + "\n",
		"          weakens isolation: a new read-write mount: alice can change /srv/data on the host\n",
		"3 changes weaken isolation (marked !).\n",
	} {
		if !strings.Contains(out, line) {
			t.Errorf("plan lacks %q:\n%s", line, out)
		}
	}
	if n := len(p.Weakening()); n != 3 {
		t.Errorf("%d weakening changes, want 3", n)
	}
}

func TestMountChanges(t *testing.T) {
	was := []MountView{{Target: "/a", Source: "/h/a", ReadOnly: true}, {Target: "/b", Source: "/h/b"}, {Target: "/gone", Source: "/h/g"}}
	now := []MountView{{Target: "/a", Source: "/h/a"}, {Target: "/b", Source: "/h/b2"}, {Target: "/new", Source: "/h/n", ReadOnly: true}}
	got := map[string]Change{}
	for _, c := range diffMounts("x", was, now) {
		got[c.Attr] = c
	}
	if c := got["mount /a"]; c.Op != "~" || !strings.Contains(c.Weakens, "read-only -> read-write") {
		t.Errorf("/a ro->rw: %+v", c)
	}
	if c := got["mount /b"]; !strings.Contains(c.Weakens, "another host path") {
		t.Errorf("/b moved rw: %+v", c)
	}
	if c := got["mount /new"]; c.Op != "+" || c.Weakens != "" {
		t.Errorf("/new read-only added: %+v", c)
	}
	if c := got["mount /gone"]; c.Op != "-" || c.Weakens != "" || !c.Replace {
		t.Errorf("/gone removed: %+v", c)
	}
}

func TestSmallerLimitsAndImageRebuildDoNotWeaken(t *testing.T) {
	was, now := baseView(), baseView()
	now.Memory, now.NanoCPUs, now.TmpSize = 128<<20, 5e8, 32<<20
	now.ImageID = "sha256:bbbbbbbbbbbbbbbbbbbb"
	cs := DiffView("a", was, now)
	if len(cs) != 4 {
		t.Fatalf("want 4 changes, got %v", cs)
	}
	for _, c := range cs {
		if c.Weakens != "" {
			t.Errorf("%s weakens: %s", c.Attr, c.Weakens)
		}
		if !c.Replace {
			t.Errorf("%s does not force a replace", c.Attr)
		}
	}
	if cs[0].Attr != "image_id" || !strings.Contains(cs[0].After, "rebuilt") {
		t.Errorf("image rebuild: %+v", cs[0])
	}
	// A limit dropped (0 is unlimited to an engine) is wider.
	now = baseView()
	now.Pids = 0
	if cs := DiffView("a", was, now); len(cs) != 1 || cs[0].Weakens == "" {
		t.Errorf("pids limit removed: %v", cs)
	}
}

// Relay ACL, check-ins and the brief change in place: the container stays,
// the line says how apply makes the change, and a new peer is marked.
func TestInPlaceChanges(t *testing.T) {
	v := baseView()
	was := &InPlace{SendTo: []string{"bob"}, Checkins: []string{`every 30m0s: "status?"`}, BriefSHA: "aaaaaaaaaaaaaaaa"}
	now := InPlace{SendTo: []string{"bob", "carol"}, Checkins: []string{`every 10m0s: "status?"`}, BriefSHA: "bbbbbbbbbbbbbbbb"}
	p := Diff("demo", []Desired{{Agent: "alice", Hash: "h", View: &v, InPlace: now, AppliedInPlace: was}}, []engine.Container{deployed("alice", "h", v)})
	if p.Count(Update) != 1 || !p.Changes() {
		t.Fatalf("want one update:\n%s", p)
	}
	out := p.String()
	for _, want := range []string{
		`    ~ update   alice  (~ send_to: ["bob"] -> ["bob", "carol"]; + checkin: every 10m0s: "status?"; - checkin: every 30m0s: "status?"; ~ brief: (sha256 aaaaaaaaaaaa) -> (sha256 bbbbbbbbbbbb))` + "\n",
		`    !   ~ send_to: ["bob"] -> ["bob", "carol"]  # in place: the relay reloads its ACL` + "\n",
		`          weakens isolation: alice may now message "carol"` + "\n",
		"Plan: 0 to create, 1 to update in place, 0 to replace, 0 to delete, 0 unchanged.\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	// Nothing applied before (no relay config): nothing to compare, no change.
	p = Diff("demo", []Desired{{Agent: "alice", Hash: "h", View: &v, InPlace: now}}, []engine.Container{deployed("alice", "h", v)})
	if p.Changes() {
		t.Errorf("unknown applied state shows changes:\n%s", p)
	}
	// The same as applied: no change.
	p = Diff("demo", []Desired{{Agent: "alice", Hash: "h", View: &v, InPlace: now, AppliedInPlace: &now}}, []engine.Container{deployed("alice", "h", v)})
	if p.Changes() {
		t.Errorf("re-applying the same relay settings changes something:\n%s", p)
	}
}

func TestEgressWideningIsMarked(t *testing.T) {
	v := baseView()
	p := Diff("demo", []Desired{{Agent: "eng", Hash: "h", View: &v,
		AppliedEgress: entries([]string{"x.org"}, "gist.github.com"), Egress: entries([]string{"pypi.org"})}},
		[]engine.Container{deployed("eng", "h", v)})
	out := p.String()
	for _, want := range []string{
		`    ~ update   eng  (egress.allow: + "pypi.org", - "x.org"; egress.deny: - "gist.github.com")` + "\n",
		`    !   + egress.allow: "pypi.org"  # in place: the egress proxy reloads its rules` + "\n",
		`    !   - egress.deny: "gist.github.com"  # in place: the egress proxy reloads its rules` + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, `- egress.allow: "x.org"  #`) {
		t.Errorf("a narrowing egress change is repeated under the update:\n%s", out)
	}
}

func TestRunChanges(t *testing.T) {
	cs := DiffRun(RunView{RequireRootless: true}, RunView{AcceptUnenforced: []string{"pids"}})
	if len(cs) != 2 || cs[0].Weakens == "" || cs[1].Weakens == "" {
		t.Fatalf("require_rootless off and a limit accepted unenforced: %+v", cs)
	}
	p := Plan{Run: "demo", Actions: []Action{{Kind: Keep, Agent: "a"}}, RunChanges: cs}
	if !p.Changes() {
		t.Error("run changes are not changes")
	}
	out := p.String()
	for _, want := range []string{
		"    ~ update   run \"demo\"\n",
		"    !   ~ require_rootless: true -> false  # in place: checked by every apply\n",
		"Run settings: 2 to change in place.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	if cs := DiffRun(RunView{}, RunView{RequireRootless: true}); len(cs) != 1 || cs[0].Weakens != "" {
		t.Errorf("require_rootless turned on weakens: %+v", cs)
	}
}

// A hash change that no setting of the file explains (runner's profile, a
// sensitive value) still replaces, and says so.
func TestReplaceWithoutVisibleChange(t *testing.T) {
	v := baseView()
	p := Diff("demo", []Desired{{Agent: "a", Hash: "new", View: &v}}, []engine.Container{deployed("a", "old", v)})
	if a := p.Actions[0]; a.Kind != Replace || !strings.Contains(a.Reason, "no setting of the file changed") {
		t.Errorf("got %s (%s)", a.Kind, a.Reason)
	}
}

func TestSensitiveValuesStaySensitive(t *testing.T) {
	was, now := baseView(), baseView()
	was.Env["TOKEN"], now.Env["TOKEN"] = Sensitive, Sensitive
	now.Env["MODE"] = "prod"
	for _, c := range DiffView("a", was, now) {
		if c.Attr == "env.TOKEN" {
			t.Errorf("a sensitive value shows as a change: %+v", c)
		}
	}
}

func TestSecretBindings(t *testing.T) {
	was, now := baseView(), baseView()
	now.Secrets = map[string]string{"GH": `inject hosts=["api.github.com"] header=Authorization scheme="Bearer"`}
	cs := DiffView("a", was, now)
	if len(cs) != 1 || cs[0].Attr != "secret.GH" || cs[0].Op != "+" || !cs[0].Replace || !strings.Contains(cs[0].Weakens, "gains the credential GH") {
		t.Errorf("secret added: %+v", cs)
	}
	if cs := DiffView("a", now, was); len(cs) != 1 || cs[0].Op != "-" || cs[0].Weakens != "" {
		t.Errorf("secret removed: %+v", cs)
	}
}
