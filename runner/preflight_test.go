package runner

import (
	"strings"
	"testing"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/engine"
)

func TestPreflight(t *testing.T) {
	full := engine.Info{Name: "docker", Endpoint: "unix:///x", Seccomp: true, MemoryLimit: true, PidsLimit: true, CPULimit: true, CgroupVersion: "2"}
	cases := []struct {
		name    string
		run     config.Run
		info    func(engine.Info) engine.Info
		wantErr string
	}{
		{"all good", config.Run{Name: "r"}, func(i engine.Info) engine.Info { return i }, ""},
		{"rootful refused", config.Run{Name: "r", RequireRootless: true}, func(i engine.Info) engine.Info { return i }, "require_rootless"},
		{"rootless ok", config.Run{Name: "r", RequireRootless: true}, func(i engine.Info) engine.Info { i.Rootless = true; return i }, ""},
		{"userns ok", config.Run{Name: "r", RequireRootless: true}, func(i engine.Info) engine.Info { i.UserNS = true; return i }, ""},
		{"no seccomp", config.Run{Name: "r"}, func(i engine.Info) engine.Info { i.Seccomp = false; return i }, "seccomp"},
		{"memory unenforced", config.Run{Name: "r"}, func(i engine.Info) engine.Info { i.MemoryLimit = false; return i }, `accept_unenforced = ["memory"]`},
		{"pids unenforced", config.Run{Name: "r"}, func(i engine.Info) engine.Info { i.PidsLimit = false; return i }, `accept_unenforced = ["pids"]`},
		{"cpus unenforced", config.Run{Name: "r"}, func(i engine.Info) engine.Info { i.CPULimit = false; return i }, `accept_unenforced = ["cpus"]`},
		{"accepted", config.Run{Name: "r", AcceptUnenforced: []string{"memory", "pids", "cpus"}}, func(i engine.Info) engine.Info {
			i.MemoryLimit, i.PidsLimit, i.CPULimit = false, false, false
			return i
		}, ""},
		{"accepting one is not accepting all", config.Run{Name: "r", AcceptUnenforced: []string{"memory"}}, func(i engine.Info) engine.Info {
			i.MemoryLimit, i.PidsLimit = false, false
			return i
		}, "pids"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Preflight(&config.Config{Run: c.run}, c.info(full))
			switch {
			case c.wantErr == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Errorf("want error containing %q, got %v", c.wantErr, err)
			}
		})
	}
}

func TestDoctor(t *testing.T) {
	safe := Doctor(engine.Info{Name: "docker", Seccomp: true, Rootless: true, MemoryLimit: true, PidsLimit: true, CPULimit: true})
	if !safe.Safe() {
		t.Errorf("rootless engine with seccomp and limits should be safe: %+v", safe)
	}
	// Rootful and no limits: warnings, still safe to use with explicit acceptance.
	warn := Doctor(engine.Info{Name: "docker", Seccomp: true})
	if !warn.Safe() {
		t.Errorf("rootful engine with seccomp is usable (warnings only): %+v", warn)
	}
	marks := ""
	for _, c := range warn.Checks {
		marks += c.Mark()
	}
	if strings.Count(marks, "!") != 4 { // rootless, memory, pids, cpus
		t.Errorf("want 4 warnings, got marks %q", marks)
	}
	if Doctor(engine.Info{Name: "docker"}).Safe() {
		t.Error("an engine without seccomp must be unsafe")
	}
}

// TestPreflightRuntime: apply stops before creating anything when an agent
// asks for a runtime the engine does not offer, naming the agent, the
// runtime, what the engine offers and how to add gVisor.
func TestPreflightRuntime(t *testing.T) {
	info := engine.Info{Name: "docker", Endpoint: "unix:///x", Seccomp: true, MemoryLimit: true, PidsLimit: true, CPULimit: true,
		Runtimes: []string{"io.containerd.runc.v2", "runc"}}
	cfg := &config.Config{Run: config.Run{Name: "r"}, Agents: []config.Agent{
		{Name: "plain"}, {Name: "host", Runtime: "runc"}, {Name: "sandboxed", Runtime: "runsc"}, {Name: "also", Runtime: "runsc"},
	}}
	err := Preflight(cfg, info)
	if err == nil {
		t.Fatal("runsc is not offered, but preflight passed")
	}
	for _, want := range []string{`agent "sandboxed" asks for runtime "runsc"`, `"io.containerd.runc.v2", "runc"`, "scripts/gvisor-docker.sh"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), `"also"`) {
		t.Errorf("one line per missing runtime, not per agent: %v", err)
	}
	info.Runtimes = append(info.Runtimes, "runsc")
	if err := Preflight(cfg, info); err != nil {
		t.Errorf("runsc offered: %v", err)
	}
}
