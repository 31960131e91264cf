package profile

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/policies"
)

func sampleAgent() config.Agent {
	return config.Agent{
		Name:     "alice",
		Image:    "localhost/runner-agent:latest",
		Command:  []string{"claude", "--model", "x; rm -rf / $(id)"},
		Env:      map[string]string{"FOO": "bar", "EDITOR": "vi", "TERM": "xterm-256color", "HOME": "/root", "RUNNER_AGENT": "mallory"},
		User:     "1000:1001",
		Memory:   1 << 30,
		NanoCPUs: 2e9,
		Pids:     128,
		Network:  "bridge",
		Workdir:  "/work",
		Mounts: []config.Mount{
			{Source: "/home/op/src", Target: "/work", ReadOnly: false},
			{Source: "/home/op/docs", Target: "/docs", ReadOnly: true},
		},
		TmpSize:     32 << 20,
		HomeSize:    16 << 20,
		Restart:     "always",
		MaxRestarts: 7,
	}
}

func TestBuild(t *testing.T) {
	s := Build("demo", sampleAgent())

	var compact bytes.Buffer
	if err := json.Compact(&compact, policies.Seccomp); err != nil {
		t.Fatal(err)
	}
	want := engine.Spec{
		Name:       "runner-demo-alice",
		Image:      "localhost/runner-agent:latest",
		Entrypoint: []string{"/usr/local/bin/runner-agent", "init", "--"},
		Cmd:        []string{"claude", "--model", "x; rm -rf / $(id)"},
		Env: []string{
			"EDITOR=vi",
			"FOO=bar",
			"HOME=/home/agent",
			"LANG=C.UTF-8",
			"LC_ALL=C.UTF-8",
			"RUNNER_AGENT=alice",
			"RUNNER_RESTART=always:7",
			"RUNNER_RUN=demo",
			"TERM=xterm-256color",
		},
		User:     "1000:1001",
		Workdir:  "/work",
		Hostname: "alice",
		Labels: map[string]string{
			"runner.run":         "demo",
			"runner.agent":       "alice",
			"runner.config-hash": s.Labels["runner.config-hash"],
			"runner.user":        "1000:1001",
		},
		CapDrop:         []string{"ALL"},
		NoNewPrivileges: true,
		SeccompJSON:     compact.String(),
		ReadonlyRootfs:  true,
		Tmpfs: map[string]string{
			"/tmp":        "rw,nosuid,nodev,size=33554432,mode=1777",
			"/home/agent": "rw,nosuid,nodev,size=16777216,uid=1000,gid=1001,mode=0700",
		},
		Memory:    1 << 30,
		NanoCPUs:  2e9,
		PidsLimit: 128,
		Network:   "bridge",
		Mounts: []engine.Mount{
			{Source: "/home/op/src", Target: "/work"},
			{Source: "/home/op/docs", Target: "/docs", ReadOnly: true},
		},
		Init: false,
		Health: &engine.Health{
			Test:     []string{"/usr/local/bin/runner-agent", "health"},
			Interval: 5 * time.Minute, Timeout: 5 * time.Second, StartPeriod: 15 * time.Second, Retries: 2,
		},
		MaskedPaths: append([]string{
			"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
			"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
			"/sys/devices/virtual/powercap",
			"/proc/cmdline", "/proc/swaps", "/proc/diskstats", "/proc/partitions", "/proc/modules", "/proc/kallsyms",
		}, thermalThrottle()...),
		ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
	}
	gotJSON, _ := json.MarshalIndent(s, "", "  ")
	wantJSON, _ := json.MarshalIndent(want, "", "  ")
	if !bytes.Equal(gotJSON, wantJSON) {
		t.Errorf("Build:\n got %s\nwant %s", gotJSON, wantJSON)
	}
	if h := s.Labels[engine.LabelConfigHash]; !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(h) || h != Hash(s) {
		t.Errorf("config-hash label %q, Hash(spec) %q", h, Hash(s))
	}
	if !strings.Contains(s.SeccompJSON, `"defaultAction":"SCMP_ACT_ERRNO"`) {
		t.Error("SeccompJSON is not the compact embedded profile")
	}
}

func TestBuildDefaultsZeroValues(t *testing.T) {
	s := Build("demo", config.Agent{Name: "bob", Command: []string{"sh"}, User: "40001:40001"})
	if s.Memory != config.DefaultMemory || s.NanoCPUs != 1e9 || s.PidsLimit != config.DefaultPids ||
		s.Network != "none" || s.User != "40001:40001" || s.Image != config.DefaultImage || s.Workdir != "/home/agent" {
		t.Errorf("zero values not defaulted: %+v", s)
	}
	if s.Labels[engine.LabelUser] != "40001:40001" {
		t.Errorf("label %s = %q", engine.LabelUser, s.Labels[engine.LabelUser])
	}
	if s.Tmpfs["/tmp"] != "rw,nosuid,nodev,size=67108864,mode=1777" ||
		s.Tmpfs["/home/agent"] != "rw,nosuid,nodev,size=67108864,uid=40001,gid=40001,mode=0700" {
		t.Errorf("tmpfs = %v", s.Tmpfs)
	}
	if s.Mounts != nil {
		t.Errorf("mounts = %v", s.Mounts)
	}
	if !slices.Contains(s.Env, "RUNNER_RESTART=on-failure:5") {
		t.Errorf("env without the default restart policy: %q", s.Env)
	}
}

func TestBuildDoesNotAliasAgent(t *testing.T) {
	a := sampleAgent()
	s := Build("demo", a)
	s.Cmd[0] = "changed"
	if a.Command[0] != "claude" {
		t.Error("Spec.Cmd aliases Agent.Command")
	}
}

func TestHash(t *testing.T) {
	a := sampleAgent()
	h := Hash(Build("demo", a))
	for i := 0; i < 20; i++ { // map iteration order varies between calls
		if got := Hash(Build("demo", sampleAgent())); got != h {
			t.Fatalf("hash not stable: %s vs %s", got, h)
		}
	}

	// Labels are excluded, nil and empty collections are alike.
	s := Build("demo", a)
	s.Labels = map[string]string{"x": "y"}
	if Hash(s) != h {
		t.Error("labels change the hash")
	}
	s = Build("demo", config.Agent{Name: "bob", Command: []string{"sh"}})
	e := s
	e.Mounts = []engine.Mount{}
	if Hash(s) != Hash(e) {
		t.Error("nil and empty Mounts hash differently")
	}

	// Map insertion order does not matter.
	b := sampleAgent()
	b.Env = map[string]string{}
	for _, k := range []string{"RUNNER_AGENT", "HOME", "TERM", "EDITOR", "FOO"} {
		b.Env[k] = a.Env[k]
	}
	if Hash(Build("demo", b)) != h {
		t.Error("env map order changes the hash")
	}
	sp := Build("demo", a)
	sp.Tmpfs = map[string]string{"/home/agent": sp.Tmpfs["/home/agent"], "/tmp": sp.Tmpfs["/tmp"]}
	if Hash(sp) != h {
		t.Error("tmpfs map order changes the hash")
	}

	// Any real change does.
	for name, mutate := range map[string]func(*config.Agent){
		"command":  func(a *config.Agent) { a.Command = []string{"claude", "--model", "y"} },
		"argv":     func(a *config.Agent) { a.Command = []string{"claude --model", "x; rm -rf / $(id)"} },
		"env":      func(a *config.Agent) { a.Env["FOO"] = "baz" },
		"image":    func(a *config.Agent) { a.Image = "other:1" },
		"memory":   func(a *config.Agent) { a.Memory++ },
		"network":  func(a *config.Agent) { a.Network = "none" },
		"mount ro": func(a *config.Agent) { a.Mounts[0].ReadOnly = true },
		"user":     func(a *config.Agent) { a.User = "1000:1000" },
		"tmp size": func(a *config.Agent) { a.TmpSize++ },
		"restart":  func(a *config.Agent) { a.Restart = "on-failure" },
		"max":      func(a *config.Agent) { a.MaxRestarts = 0 },
		"runtime":  func(a *config.Agent) { a.Runtime = config.RuntimeRunsc },
	} {
		m := sampleAgent()
		mutate(&m)
		if Hash(Build("demo", m)) == h {
			t.Errorf("changing %s does not change the hash", name)
		}
	}
	if Hash(Build("other", a)) == h {
		t.Error("run name does not change the hash")
	}
	// No runtime is not in the hash at all: containers made before
	// runtime existed keep their hash, and a re-apply leaves them alone.
	if b, _ := json.Marshal(Build("demo", a)); bytes.Contains(b, []byte(`"Runtime"`)) {
		t.Error(`a spec without a runtime encodes "Runtime"; that changes every existing container's hash`)
	}
}

// TestCheckRuntime: an agent that asked for gVisor is refused unless the
// engine reports exactly that runtime; one that asked for none takes the
// engine's default.
func TestCheckRuntime(t *testing.T) {
	a := sampleAgent()
	a.Runtime = config.RuntimeRunsc
	s := Build("demo", a)
	for _, got := range []string{"", "runc", "io.containerd.runc.v2", "runsc-debug"} {
		o := observed(s)
		o.Runtime = got
		vs := Check(s, o)
		if len(vs) != 1 || vs[0].Setting != "Runtime" || vs[0].Limit != "" || vs[0].Got != q(got) {
			t.Errorf("runtime %q for a runsc agent: violations %v, want exactly one Runtime", got, vs)
		}
	}
	o := observed(s)
	o.Runtime = "runsc"
	if vs := Check(s, o); len(vs) != 0 {
		t.Errorf("runsc as asked: %v", vs)
	}
	plain := Build("demo", sampleAgent())
	o = observed(plain)
	o.Runtime = "runc"
	if vs := Check(plain, o); len(vs) != 0 {
		t.Errorf("no runtime asked, engine default runc: %v", vs)
	}
}

// observed is what a correct engine reports for s.
func observed(s engine.Spec) engine.Observed {
	labels := map[string]string{}
	for k, v := range s.Labels {
		labels[k] = v
	}
	tmpfs := map[string]string{}
	for k, v := range s.Tmpfs {
		tmpfs[k] = v
	}
	// The engine may re-encode the profile (e.g. docker CLI compacts it, or
	// pretty-prints it); Check must not care.
	var pretty bytes.Buffer
	_ = json.Indent(&pretty, []byte(s.SeccompJSON), "", "  ")
	return engine.Observed{
		ID:              "abc",
		Name:            "/" + s.Name,
		Image:           s.Image,
		User:            s.User,
		Labels:          labels,
		CapDrop:         []string{"all"},
		NoNewPrivileges: true,
		SeccompProfile:  pretty.String(),
		ReadonlyRootfs:  true,
		Tmpfs:           tmpfs,
		Memory:          s.Memory,
		MemorySwap:      s.Memory,
		NanoCPUs:        s.NanoCPUs,
		PidsLimit:       s.PidsLimit,
		NetworkMode:     s.Network,
		IpcMode:         "private",
		CgroupnsMode:    "private",
		Mounts:          slices.Clone(s.Mounts),
		Entrypoint:      slices.Clone(s.Entrypoint),
		Cmd:             slices.Clone(s.Cmd),
		State:           "created",
		Health:          cloneHealth(s.Health),
		// In another order: Check compares them as sets.
		MaskedPaths:   reversed(s.MaskedPaths),
		ReadonlyPaths: reversed(s.ReadonlyPaths),
	}
}

func TestCheckPerfect(t *testing.T) {
	s := Build("demo", sampleAgent())
	if vs := Check(s, observed(s)); len(vs) != 0 {
		t.Fatalf("violations for a perfect container: %v", vs)
	}
	o := observed(s)
	o.CapDrop = []string{"CAP_ALL"}
	o.IpcMode = "shareable"
	o.Mounts = []engine.Mount{s.Mounts[1], s.Mounts[0]}
	o.Tmpfs["/tmp"] = "mode=1777,rw,size=33554432,nosuid,nodev"
	o.SeccompProfile = s.SeccompJSON
	if vs := Check(s, o); len(vs) != 0 {
		t.Fatalf("violations for equivalent settings: %v", vs)
	}
}

func TestCheck(t *testing.T) {
	s := Build("demo", sampleAgent())
	otherProfile := strings.Replace(s.SeccompJSON, `"SCMP_ACT_ERRNO"`, `"SCMP_ACT_ALLOW"`, 1)
	rows := []struct {
		name    string
		mutate  func(*engine.Observed)
		setting string
		limit   string
		got     string // substring of Got, if set
	}{
		{"name", func(o *engine.Observed) { o.Name = "/runner-demo-bob" }, "Name", "", ""},
		{"image", func(o *engine.Observed) { o.Image = "evil:latest" }, "Image", "", `"evil:latest"`},
		{"label run", func(o *engine.Observed) { o.Labels["runner.run"] = "other" }, "Labels[runner.run]", "", ""},
		{"label agent", func(o *engine.Observed) { delete(o.Labels, "runner.agent") }, "Labels[runner.agent]", "", "no label"},
		{"label hash", func(o *engine.Observed) { o.Labels["runner.config-hash"] = "0" }, "Labels[runner.config-hash]", "", ""},
		{"entrypoint", func(o *engine.Observed) { o.Entrypoint = []string{"/bin/sh", "-c"} }, "Entrypoint", "", `"/bin/sh"`},
		{"entrypoint none", func(o *engine.Observed) { o.Entrypoint = nil }, "Entrypoint", "", "[]"},
		{"cmd", func(o *engine.Observed) { o.Cmd = []string{"claude --model x; rm -rf / $(id)"} }, "Cmd", "", ""},
		{"user differs", func(o *engine.Observed) { o.User = "1000:1000" }, "User", "", ""},
		{"user root", func(o *engine.Observed) { o.User = "0:1001" }, "User", "", `"0:1001"`},
		{"user empty", func(o *engine.Observed) { o.User = "" }, "User", "", ""},
		{"label user", func(o *engine.Observed) { o.Labels["runner.user"] = "1:1" }, "Labels[runner.user]", "", `"1:1"`},
		{"cmdline not masked", func(o *engine.Observed) {
			o.MaskedPaths = slices.DeleteFunc(o.MaskedPaths, func(p string) bool { return p == "/proc/cmdline" })
		}, "MaskedPaths", "", ""},
		{"engine default masks only", func(o *engine.Observed) { o.MaskedPaths = []string{"/proc/kcore", "/proc/keys"} }, "MaskedPaths", "", "[/proc/kcore /proc/keys]"},
		{"no masks", func(o *engine.Observed) { o.MaskedPaths = nil }, "MaskedPaths", "", "[]"},
		{"proc/sys writable", func(o *engine.Observed) {
			o.ReadonlyPaths = slices.DeleteFunc(o.ReadonlyPaths, func(p string) bool { return p == "/proc/sys" })
		}, "ReadonlyPaths", "", ""},
		{"user name", func(o *engine.Observed) { o.User = "agent" }, "User", "", ""},
		{"capdrop missing", func(o *engine.Observed) { o.CapDrop = nil }, "CapDrop", "", ""},
		{"capdrop partial", func(o *engine.Observed) { o.CapDrop = []string{"NET_RAW", "SYS_ADMIN"} }, "CapDrop", "", ""},
		{"capadd", func(o *engine.Observed) { o.CapAdd = []string{"NET_BIND_SERVICE"} }, "CapAdd", "", ""},
		{"no-new-privileges", func(o *engine.Observed) { o.NoNewPrivileges = false }, "NoNewPrivileges", "", "false"},
		{"privileged", func(o *engine.Observed) { o.Privileged = true }, "Privileged", "", "true"},
		{"seccomp none", func(o *engine.Observed) { o.SeccompProfile = "" }, "SeccompProfile", "", "no profile"},
		{"seccomp unconfined", func(o *engine.Observed) { o.SeccompProfile = "unconfined" }, "SeccompProfile", "", "unconfined"},
		{"seccomp other", func(o *engine.Observed) { o.SeccompProfile = otherProfile }, "SeccompProfile", "", "different"},
		{"seccomp garbage", func(o *engine.Observed) { o.SeccompProfile = "{" }, "SeccompProfile", "", "unparsable"},
		{"readonly rootfs", func(o *engine.Observed) { o.ReadonlyRootfs = false }, "ReadonlyRootfs", "", "false"},
		{"tmpfs options", func(o *engine.Observed) { o.Tmpfs["/tmp"] = "rw,size=33554432,mode=1777" }, "Tmpfs[/tmp]", "", ""},
		{"tmpfs missing", func(o *engine.Observed) { delete(o.Tmpfs, "/home/agent") }, "Tmpfs[/home/agent]", "", "absent"},
		{"tmpfs extra", func(o *engine.Observed) { o.Tmpfs["/var"] = "rw" }, "Tmpfs[/var]", "", ""},
		{"devices", func(o *engine.Observed) { o.Devices = 1 }, "Devices", "", "1"},
		{"mount missing", func(o *engine.Observed) { o.Mounts = o.Mounts[:1] }, "Mounts[/docs]", "", "absent"},
		{"mount rw", func(o *engine.Observed) { o.Mounts[1].ReadOnly = false }, "Mounts[/docs]", "", "/home/op/docs:/docs:rw"},
		{"mount source", func(o *engine.Observed) { o.Mounts[0].Source = "/etc" }, "Mounts[/work]", "", "/etc:/work:rw"},
		{"mount extra", func(o *engine.Observed) {
			o.Mounts = append(o.Mounts, engine.Mount{Source: "/var/lib/docker/volumes/x/_data", Target: "/data"})
		}, "Mounts[/data]", "", "/var/lib/docker/volumes/x/_data:/data:rw"},
		{"memory unenforced", func(o *engine.Observed) { o.Memory = 0 }, "Memory", "memory", ""},
		{"memory differs", func(o *engine.Observed) { o.Memory *= 2 }, "Memory", "", ""},
		{"swap default", func(o *engine.Observed) { o.MemorySwap = 2 * o.Memory }, "MemorySwap", "", ""},
		{"swap unlimited", func(o *engine.Observed) { o.MemorySwap = -1 }, "MemorySwap", "memory", ""},
		{"cpus unenforced", func(o *engine.Observed) { o.NanoCPUs = 0 }, "NanoCPUs", "cpus", ""},
		{"cpus differ", func(o *engine.Observed) { o.NanoCPUs = 4e9 }, "NanoCPUs", "", ""},
		{"pids unenforced", func(o *engine.Observed) { o.PidsLimit = -1 }, "PidsLimit", "pids", ""},
		{"pids differ", func(o *engine.Observed) { o.PidsLimit = 4096 }, "PidsLimit", "", ""},
		{"network", func(o *engine.Observed) { o.NetworkMode = "host" }, "NetworkMode", "", `"host"`},
		{"network container", func(o *engine.Observed) { o.NetworkMode = "container:abc" }, "NetworkMode", "", ""},
		{"pid host", func(o *engine.Observed) { o.PidMode = "host" }, "PidMode", "", ""},
		{"pid container", func(o *engine.Observed) { o.PidMode = "container:abc" }, "PidMode", "", ""},
		{"ipc host", func(o *engine.Observed) { o.IpcMode = "host" }, "IpcMode", "", ""},
		{"ipc container", func(o *engine.Observed) { o.IpcMode = "container:abc" }, "IpcMode", "", ""},
		{"uts host", func(o *engine.Observed) { o.UTSMode = "HOST" }, "UTSMode", "", ""},
		{"userns host", func(o *engine.Observed) { o.UsernsMode = "host" }, "UsernsMode", "", ""},
		{"cgroupns host", func(o *engine.Observed) { o.CgroupnsMode = "host" }, "CgroupnsMode", "", ""},
		{"cgroupns path", func(o *engine.Observed) { o.CgroupnsMode = "ns:/proc/1/ns/cgroup" }, "CgroupnsMode", "", ""},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			o := observed(s)
			r.mutate(&o)
			vs := Check(s, o)
			if len(vs) != 1 {
				t.Fatalf("got %d violations, want exactly one %s: %v", len(vs), r.setting, vs)
			}
			v := vs[0]
			if v.Setting != r.setting || v.Limit != r.limit || !strings.Contains(v.Got, r.got) || v.Want == "" {
				t.Errorf("got %+v, want setting %s limit %q got~%q", v, r.setting, r.limit, r.got)
			}
			if !strings.HasPrefix(v.String(), r.setting+": want ") {
				t.Errorf("String() = %q", v.String())
			}
		})
	}
}

func TestCheckEngineSocket(t *testing.T) {
	for _, src := range []string{"/var/run/docker.sock", "/run/user/1000/docker.sock", "/run/user/1000", "/run", "/", "/run/containerd/containerd.sock", "/home/op/.docker/run/docker.sock"} {
		a := sampleAgent()
		a.Mounts = append(a.Mounts, config.Mount{Source: src, Target: "/x"})
		s := Build("demo", a)
		vs := Check(s, observed(s)) // wanted and present: still refused
		if len(vs) != 1 || vs[0].Setting != "Mounts[/x]" || vs[0].Want != "no container engine socket or state" {
			t.Errorf("%s: %v", src, vs)
		}
	}
	for _, src := range []string{"/run/user/1000/runner/demo", "/home/op/src", "/var/lib/dockerish"} {
		if exposesEngineSocket(src) {
			t.Errorf("%s flagged as an engine socket", src)
		}
	}
}

func TestCheckRejectsWeakSpec(t *testing.T) {
	s := Build("demo", sampleAgent())
	o := observed(s)
	weak := s
	weak.SeccompJSON = ""
	weak.Memory = 0
	o.SeccompProfile, o.Memory = "", 0
	vs := Check(weak, o)
	var settings []string
	for _, v := range vs {
		settings = append(settings, v.Setting)
		if v.Limit != "" {
			t.Errorf("a zero limit in the spec is not an acceptable unenforced limit: %v", v)
		}
	}
	if !slices.Contains(settings, "SeccompProfile") || !slices.Contains(settings, "Memory") {
		t.Errorf("weak spec accepted: %v", vs)
	}
}

func TestViolationString(t *testing.T) {
	v := Violation{Setting: "ReadonlyRootfs", Want: "true", Got: "false"}
	if v.String() != "ReadonlyRootfs: want true, got false" {
		t.Error(v.String())
	}
}

func reversed(ss []string) []string {
	out := slices.Clone(ss)
	slices.Reverse(out)
	return out
}

// TestBuildRuntime: a gVisor agent runs the readable runner-agent (gVisor
// cannot load the execute-only one), as PID 1 and as its health check; a
// runc agent the execute-only one.
func TestBuildRuntime(t *testing.T) {
	a := sampleAgent()
	a.Runtime = config.RuntimeRunsc
	s := Build("demo", a)
	if s.Runtime != "runsc" || s.Entrypoint[0] != "/usr/local/lib/runner/runner-agent" || s.Health.Test[0] != s.Entrypoint[0] {
		t.Errorf("runsc agent: runtime %q, entrypoint %v, health %v", s.Runtime, s.Entrypoint, s.Health.Test)
	}
	if !slices.Contains(s.Env, "PATH=/usr/local/lib/runner:/usr/local/bin:/usr/bin:/bin") {
		t.Errorf("runsc agent's PATH must find the readable runner-agent first: %v", s.Env)
	}
	for _, rt := range []string{"", config.RuntimeRunc} {
		a.Runtime = rt
		s = Build("demo", a)
		if s.Runtime != rt || s.Entrypoint[0] != "/usr/local/bin/runner-agent" || s.Health.Test[0] != s.Entrypoint[0] {
			t.Errorf("runtime %q: entrypoint %v, health %v", rt, s.Entrypoint, s.Health.Test)
		}
		if slices.ContainsFunc(s.Env, func(e string) bool { return strings.HasPrefix(e, "PATH=") }) {
			t.Errorf("runtime %q: PATH set (the image's is kept): %v", rt, s.Env)
		}
	}
}
