package docker

import (
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/profile"
)

// TestObserveOCI: the read-back of a Podman container takes its security
// settings from the runtime's spec, leaves out only Podman's own files,
// and calls anything it cannot account for what it is, so profile.Check
// refuses it.
func TestObserveOCI(t *testing.T) {
	dir := "/home/u/.local/share/containers/storage/vfs-containers/abc"
	own := "/run/user/1/containers/vfs-containers/abc/userdata/"
	netnsDir := "/run/user/1/netns"
	// What rootless Podman 4 writes for a runner container (read from a
	// real config.json).
	base := func() *specs.Spec {
		sp := &specs.Spec{
			Process:     &specs.Process{NoNewPrivileges: true, Capabilities: &specs.LinuxCapabilities{}, User: specs.User{UID: 1000, GID: 1000}},
			Root:        &specs.Root{Readonly: true},
			Annotations: map[string]string{},
			Linux: &specs.Linux{
				Namespaces:  []specs.LinuxNamespace{{Type: "pid"}, {Type: "network"}, {Type: "ipc"}, {Type: "uts"}, {Type: "mount"}, {Type: "cgroup"}},
				Sysctl:      map[string]string{"net.ipv4.ping_group_range": "0 0"},
				MaskedPaths: []string{"/proc/kcore"},
			},
			Mounts: []specs.Mount{
				{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"rw", "size=1m", "uid=7", "gid=7", "rprivate", "tmpcopyup"}},
				{Destination: "/work", Type: "bind", Source: "/src", Options: []string{"bind", "ro", "rprivate"}},
				{Destination: "/etc/hosts", Type: "bind", Source: own + "hosts", Options: []string{"bind", "rprivate", "ro", "nosuid", "noexec", "nodev"}},
				{Destination: "/dev/shm", Type: "bind", Source: "/home/u/.local/share/containers/storage/vfs-containers/abc/userdata/shm", Options: []string{"bind", "rprivate", "nosuid", "noexec", "nodev"}},
			},
		}
		for _, k := range podmanKernelMounts {
			k.Options = append(slices.Clone(k.Options), "rprivate")
			sp.Mounts = append(sp.Mounts, k)
		}
		return sp
	}
	observe := func(sp *specs.Spec) engine.Observed {
		o := engine.Observed{User: "1000:1000", NetworkMode: "none"} // the compatible inspect's
		observeOCI(&o, sp, dir, netnsDir)
		return o
	}
	o := observe(base())
	if len(o.CapDrop) != 1 || o.CapDrop[0] != "ALL" || len(o.CapAdd) != 0 || !o.NoNewPrivileges || !o.ReadonlyRootfs || o.Privileged || o.Devices != 0 {
		t.Errorf("hardened spec: %+v", o)
	}
	if o.Tmpfs["/tmp"] != "rw,size=1m,uid=7,gid=7" || len(o.Tmpfs) != 1 {
		t.Errorf("tmpfs %v", o.Tmpfs)
	}
	if len(o.Mounts) != 1 || o.Mounts[0].Target != "/work" || !o.Mounts[0].ReadOnly {
		t.Errorf("mounts %+v (Podman's /etc/hosts is its own, /work is runner's)", o.Mounts)
	}
	if o.CgroupnsMode != "private" || o.IpcMode != "private" || o.SeccompProfile != "" || o.User != "1000:1000" || o.NetworkMode != "none" {
		t.Errorf("cgroupns %q ipc %q seccomp %q user %q network %q", o.CgroupnsMode, o.IpcMode, o.SeccompProfile, o.User, o.NetworkMode)
	}

	// Each weakening must be a difference profile.Check reports, beyond
	// what it reports for the hardened spec (this test's want is partial).
	want := engine.Spec{User: "1000:1000", Network: "none", ReadonlyRootfs: true, NoNewPrivileges: true, CapDrop: []string{"ALL"},
		Tmpfs: map[string]string{"/tmp": "rw,size=1m,uid=7,gid=7"}, MaskedPaths: []string{"/proc/kcore"},
		Mounts: []engine.Mount{{Source: "/src", Target: "/work", ReadOnly: true}}}
	// settings names the differences, each with what was found.
	settings := func(o engine.Observed) []string {
		var s []string
		for _, v := range profile.Check(want, o) {
			s = append(s, v.Setting+"="+v.Got)
		}
		return s
	}
	// differs: a difference in setting that the hardened spec has not.
	differs := func(got, hardened []string, setting string) bool {
		return slices.ContainsFunc(got, func(g string) bool {
			return strings.HasPrefix(g, setting+"=") && !slices.Contains(hardened, g)
		})
	}
	hardened := settings(o)
	t.Logf("hardened spec against this partial want: %v", hardened)
	addMount := func(m specs.Mount) func(*specs.Spec) {
		return func(sp *specs.Spec) { sp.Mounts = append(sp.Mounts, m) }
	}
	for name, c := range map[string]struct {
		weaken  func(*specs.Spec)
		setting string
	}{
		"a capability":       {func(sp *specs.Spec) { sp.Process.Capabilities.Bounding = []string{"CAP_CHOWN"} }, "CapAdd"},
		"host cgroupns":      {func(sp *specs.Spec) { sp.Linux.Namespaces = sp.Linux.Namespaces[:5] }, "CgroupnsMode"},
		"another sysctl":     {func(sp *specs.Spec) { sp.Linux.Sysctl["kernel.shmmax"] = "1" }, "Privileged"},
		"a foreign filter":   {func(sp *specs.Spec) { sp.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_ALLOW"} }, "SeccompProfile"},
		"hosts from outside": {func(sp *specs.Spec) { sp.Mounts[2].Source = "/etc/hosts" }, "Mounts[/etc/hosts]"},
		"uid 0":              {func(sp *specs.Spec) { sp.Process.User = specs.User{} }, "User"},
		"a device": {func(sp *specs.Spec) {
			sp.Linux.Devices = append(sp.Linux.Devices, specs.LinuxDevice{Path: "/dev/sda", Type: "b", Major: 8})
		}, "Devices"},
		"a device rule allowing all": {func(sp *specs.Spec) {
			sp.Linux.Resources = &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}}
		}, "Devices"},
		"the host's netns":        {func(sp *specs.Spec) { sp.Linux.Namespaces[1].Path = "/proc/1/ns/net" }, "NetworkMode"},
		"a netns beside Podman's": {func(sp *specs.Spec) { sp.Linux.Namespaces[1].Path = "/run/user/1/other/netns-x" }, "NetworkMode"},
		"a second proc":           {addMount(specs.Mount{Destination: "/hostproc", Type: "proc", Source: "proc"}), "Mounts[/hostproc]"},
		"a disk":                  {addMount(specs.Mount{Destination: "/disk", Type: "ext4", Source: "/dev/sda1"}), "Mounts[/disk]"},
		"a rw sysfs":              {func(sp *specs.Spec) { sp.Mounts[6].Options = []string{"nosuid", "noexec", "nodev", "rw"} }, "Mounts[/sys]"},
		"an rbind":                {func(sp *specs.Spec) { sp.Mounts[1].Options = []string{"rbind", "ro", "rprivate"} }, "Mounts[/work]"},
		"a shared bind":           {func(sp *specs.Spec) { sp.Mounts[1].Options = []string{"bind", "ro", "rshared"} }, "Mounts[/work]"},
		"a suid bind":             {func(sp *specs.Spec) { sp.Mounts[1].Options = []string{"bind", "ro", "suid"} }, "Mounts[/work]"},
		"an exec /dev":            {func(sp *specs.Spec) { sp.Mounts[5].Options = []string{"nosuid", "exec", "mode=755"} }, "Tmpfs[/dev]"},
		"a poststart hook":        {func(sp *specs.Spec) { sp.Hooks = &specs.Hooks{Poststart: []specs.Hook{{Path: "/bin/sh"}}} }, "Privileged"},
		"apparmor off":            {func(sp *specs.Spec) { sp.Process.ApparmorProfile = "unconfined" }, "Privileged"},
		"selinux spc_t":           {func(sp *specs.Spec) { sp.Process.SelinuxLabel = "system_u:system_r:spc_t:s0" }, "Privileged"},
		"a userns onto root": {func(sp *specs.Spec) {
			sp.Linux.Namespaces = append(sp.Linux.Namespaces, specs.LinuxNamespace{Type: "user"})
			sp.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 0, Size: 65536}}
		}, "UsernsMode"},
		"a shared mount ns": {func(sp *specs.Spec) { sp.Linux.Namespaces[4].Path = "/proc/1/ns/mnt" }, "Privileged"},
	} {
		sp := base()
		c.weaken(sp)
		got := settings(observe(sp))
		if !differs(got, hardened, c.setting) {
			t.Errorf("%s: Check reports %v, want a %s difference (hardened: %v)", name, got, c.setting, hardened)
		}
	}

	// Podman's own network namespace is private: the name stays inspect's.
	sp := base()
	sp.Linux.Namespaces[1].Path = netnsDir + "/netns-1234"
	if o := observe(sp); o.NetworkMode != "none" {
		t.Errorf("Podman's netns %s read back as %q", sp.Linux.Namespaces[1].Path, o.NetworkMode)
	}
}
