package docker

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runner-dev/runner/internal/engine"
)

// TestObserveOCI: the read-back of a Podman container takes its security
// settings from the runtime's spec, leaves out only Podman's own files,
// and calls anything it cannot account for what it is.
func TestObserveOCI(t *testing.T) {
	dir := "/home/u/.local/share/containers/storage/vfs-containers/abc"
	base := func() *specs.Spec {
		return &specs.Spec{
			Process:     &specs.Process{NoNewPrivileges: true, Capabilities: &specs.LinuxCapabilities{}},
			Root:        &specs.Root{Readonly: true},
			Annotations: map[string]string{},
			Linux: &specs.Linux{
				Namespaces:  []specs.LinuxNamespace{{Type: "pid"}, {Type: "network"}, {Type: "ipc"}, {Type: "uts"}, {Type: "mount"}, {Type: "cgroup"}},
				Sysctl:      map[string]string{"net.ipv4.ping_group_range": "0 0"},
				MaskedPaths: []string{"/proc/kcore"},
			},
			Mounts: []specs.Mount{
				{Destination: "/dev", Type: "tmpfs", Options: []string{"nosuid"}},
				{Destination: "/tmp", Type: "tmpfs", Options: []string{"rw", "size=1m", "uid=7", "gid=7", "rprivate", "tmpcopyup"}},
				{Destination: "/etc/hosts", Type: "bind", Source: "/run/user/1/containers/vfs-containers/abc/userdata/hosts", Options: []string{"bind", "ro"}},
				{Destination: "/work", Type: "bind", Source: "/src", Options: []string{"bind", "ro"}},
			},
		}
	}
	var o engine.Observed
	observeOCI(&o, base(), dir)
	if len(o.CapDrop) != 1 || o.CapDrop[0] != "ALL" || len(o.CapAdd) != 0 || !o.NoNewPrivileges || !o.ReadonlyRootfs || o.Privileged {
		t.Errorf("hardened spec: %+v", o)
	}
	if o.Tmpfs["/tmp"] != "rw,size=1m,uid=7,gid=7" || len(o.Tmpfs) != 1 {
		t.Errorf("tmpfs %v", o.Tmpfs)
	}
	if len(o.Mounts) != 1 || o.Mounts[0].Target != "/work" || !o.Mounts[0].ReadOnly {
		t.Errorf("mounts %+v (Podman's /etc/hosts is its own, /work is runner's)", o.Mounts)
	}
	if o.CgroupnsMode != "private" || o.IpcMode != "private" || o.SeccompProfile != "" {
		t.Errorf("cgroupns %q ipc %q seccomp %q", o.CgroupnsMode, o.IpcMode, o.SeccompProfile)
	}
	for name, c := range map[string]struct {
		weaken func(*specs.Spec)
		bad    func(engine.Observed) bool
	}{
		"a capability":       {func(sp *specs.Spec) { sp.Process.Capabilities.Bounding = []string{"CAP_CHOWN"} }, func(o engine.Observed) bool { return len(o.CapAdd) == 1 && len(o.CapDrop) == 0 }},
		"host cgroupns":      {func(sp *specs.Spec) { sp.Linux.Namespaces = sp.Linux.Namespaces[:5] }, func(o engine.Observed) bool { return o.CgroupnsMode == "host" }},
		"another sysctl":     {func(sp *specs.Spec) { sp.Linux.Sysctl["kernel.shmmax"] = "1" }, func(o engine.Observed) bool { return o.Privileged }},
		"a foreign filter":   {func(sp *specs.Spec) { sp.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_ALLOW"} }, func(o engine.Observed) bool { return o.SeccompProfile != "" && o.SeccompProfile[0] == '{' }},
		"hosts from outside": {func(sp *specs.Spec) { sp.Mounts[2].Source = "/etc/hosts" }, func(o engine.Observed) bool { return len(o.Mounts) == 2 }},
	} {
		sp := base()
		c.weaken(sp)
		var o engine.Observed
		observeOCI(&o, sp, dir)
		if !c.bad(o) {
			t.Errorf("%s: not seen in %+v", name, o)
		}
	}
}
