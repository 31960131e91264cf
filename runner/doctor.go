package runner

import (
	"fmt"
	"slices"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/engine"
)

// Check is one line of `runner doctor`.
type Check struct {
	Name   string
	OK     bool
	Unsafe bool // a failed check that makes the engine unsafe for agents
	Detail string
}

// Mark is the symbol doctor prints before the check.
func (c Check) Mark() string {
	switch {
	case c.OK:
		return "✓"
	case c.Unsafe:
		return "✗"
	default:
		return "!"
	}
}

// DoctorReport is the result of checking an engine.
type DoctorReport struct{ Checks []Check }

// Safe is false when any check makes the engine unsafe for agents.
func (r DoctorReport) Safe() bool {
	for _, c := range r.Checks {
		if c.Unsafe && !c.OK {
			return false
		}
	}
	return true
}

// Doctor turns engine facts into checks. Unsafe: no seccomp. Warnings: a
// rootful engine (fine, agents never run as uid 0, but a container escape
// lands as host root) and limits the engine cannot enforce (apply refuses
// them unless the config accepts them).
func Doctor(info engine.Info) DoctorReport {
	var r DoctorReport
	add := func(c Check) { r.Checks = append(r.Checks, c) }
	add(Check{Name: "engine", OK: true, Detail: fmt.Sprintf("%s %s at %s", info.Name, info.Version, info.Endpoint)})
	if info.Snapshotter != "" {
		add(Check{Name: "snapshots", OK: true, Detail: fmt.Sprintf("%s; each run's root filesystems are a copy of the image with its owners shifted into the run's user namespace (made once per image and run)", info.Snapshotter)})
	}
	switch {
	case info.Name == "containerd" && info.UserNS:
		add(Check{Name: "rootless", OK: true, Detail: "a user namespace for every container (one per run): container uid 0 is not host uid 0, though the daemon runs as root"})
	case info.Rootless:
		add(Check{Name: "rootless", OK: true, Detail: "the daemon runs as an unprivileged user: container uid 0 is not host uid 0"})
	case info.UserNS:
		add(Check{Name: "rootless", OK: true, Detail: "user namespace remapping is on: container uid 0 is not host uid 0"})
	default:
		add(Check{Name: "rootless", Detail: "the daemon runs as root without user namespaces: agents run as a non-root uid, but an escape would be host root; set require_rootless = true to refuse this engine"})
	}
	add(Check{Name: "seccomp", OK: info.Seccomp, Unsafe: true, Detail: map[bool]string{true: "supported; runner applies policies/seccomp.json", false: "not supported by this engine: runner refuses to start agents"}[info.Seccomp]})
	add(Check{Name: "runtimes", OK: true, Detail: runtimesDetail(info)})
	add(Check{Name: "cgroups", OK: true, Detail: fmt.Sprintf("version %s, driver %q", info.CgroupVersion, info.CgroupDriver)})
	for _, l := range []struct {
		name string
		ok   bool
	}{{"memory", info.MemoryLimit}, {"pids", info.PidsLimit}, {"cpus", info.CPULimit}} {
		d := "enforced"
		if !l.ok {
			d = fmt.Sprintf("NOT enforceable on this engine: apply fails unless the run block says accept_unenforced = [%q]", l.name)
		}
		add(Check{Name: l.name, OK: l.ok, Detail: d})
	}
	return r
}

// runtimesDetail lists the engine's runtimes and says whether gVisor is
// among them (runtime = "runsc").
func runtimesDetail(info engine.Info) string {
	d := offered(info.Runtimes)
	if info.DefaultRuntime != "" {
		d += fmt.Sprintf(" (default %q)", info.DefaultRuntime)
	}
	if slices.Contains(info.Runtimes, config.RuntimeRunsc) {
		return d + `; runtime = "runsc" runs agents on gVisor`
	}
	return d + `; gVisor (runtime = "runsc") is not offered: see scripts/gvisor-docker.sh`
}
