package containerd

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/profile"
	"github.com/runner-dev/runner/internal/uids"
)

var testNS = uids.Mapping{
	Kind: "userns", Owner: "runner-userns",
	UID: []uids.Extent{{Inside: 0, Outside: 200000, Count: 65536}},
	GID: []uids.Extent{{Inside: 0, Outside: 200000, Count: 65536}},
}

func testSpec() engine.Spec {
	return profile.Build("demo", config.Agent{
		Name: "alice", Image: "localhost/runner-agent:latest",
		Command: []string{"sh", "-c", "x; $(id)"}, User: "40001:40001", Network: "none",
		Mounts: []config.Mount{{Source: "/srv/src", Target: "/work"}, {Source: "/srv/docs", Target: "/docs", ReadOnly: true}},
	})
}

// roundTrip builds the OCI spec, passes it through JSON (as containerd
// stores it) and reads it back.
func roundTrip(t *testing.T, s engine.Spec, mutate func(*specs.Spec)) engine.Observed {
	t.Helper()
	sp, err := buildSpec(s, ImageConfig{Env: []string{"PATH=/usr/bin:/bin", "LANG=C"}}, testNS, "/runner")
	if err != nil {
		t.Fatal(err)
	}
	if mutate != nil {
		mutate(sp)
	}
	b, err := json.Marshal(sp)
	if err != nil {
		t.Fatal(err)
	}
	var back specs.Spec
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	return observe(record{ID: "0123abcd", Image: s.Image, Labels: withName(s), Spec: &back, State: "created"})
}

func TestSpecHardened(t *testing.T) {
	s := testSpec()
	sp, err := buildSpec(s, ImageConfig{Env: []string{"PATH=/usr/bin:/bin", "LANG=C"}}, testNS, "/runner")
	if err != nil {
		t.Fatal(err)
	}
	c := sp.Process.Capabilities
	for name, set := range map[string][]string{"bounding": c.Bounding, "effective": c.Effective, "permitted": c.Permitted, "inheritable": c.Inheritable, "ambient": c.Ambient} {
		if set == nil || len(set) != 0 {
			t.Errorf("%s capabilities = %v, want an empty set", name, set)
		}
	}
	if !sp.Process.NoNewPrivileges || !sp.Root.Readonly || sp.Process.Terminal {
		t.Errorf("NNP %v, read-only root %v, terminal %v", sp.Process.NoNewPrivileges, sp.Root.Readonly, sp.Process.Terminal)
	}
	if sp.Process.User.UID != 40001 || sp.Process.User.GID != 40001 {
		t.Errorf("user = %+v", sp.Process.User)
	}
	if got := sp.Process.Args; !slices.Equal(got, append(slices.Clone(s.Entrypoint), s.Cmd...)) {
		t.Errorf("args = %q", got)
	}
	if sp.Linux.Seccomp == nil || sp.Linux.Seccomp.DefaultAction != specs.ActErrno {
		t.Fatalf("seccomp = %+v", sp.Linux.Seccomp)
	}
	for _, sc := range sp.Linux.Seccomp.Syscalls {
		if sc.Action == specs.ActAllow && slices.ContainsFunc(sc.Names, func(n string) bool { return n == "mount" || n == "unshare" || n == "ptrace" || n == "setns" }) {
			t.Errorf("seccomp allows %v", sc.Names)
		}
	}
	var kinds []specs.LinuxNamespaceType
	for _, ns := range sp.Linux.Namespaces {
		if ns.Path != "" {
			t.Errorf("namespace %s joins %s", ns.Type, ns.Path)
		}
		kinds = append(kinds, ns.Type)
	}
	for _, k := range nsKinds {
		if !slices.Contains(kinds, k) {
			t.Errorf("no new %s namespace", k)
		}
	}
	if m := sp.Linux.UIDMappings; len(m) != 1 || m[0].ContainerID != 0 || m[0].HostID != 200000 || m[0].Size != 65536 {
		t.Errorf("uid mappings = %+v", m)
	}
	r := sp.Linux.Resources
	if *r.Memory.Limit != s.Memory || *r.Memory.Swap != s.Memory || *r.Pids.Limit != s.PidsLimit || *r.CPU.Quota != s.NanoCPUs/1e9*cpuPeriod {
		t.Errorf("limits: memory %d swap %d pids %d quota %d", *r.Memory.Limit, *r.Memory.Swap, *r.Pids.Limit, *r.CPU.Quota)
	}
	if r.Devices[0].Allow || r.Devices[0].Access != "rwm" {
		t.Errorf("device cgroup does not start with deny-all: %+v", r.Devices[0])
	}
	if len(sp.Linux.Devices) != len(minimalDevices) {
		t.Errorf("devices = %+v", sp.Linux.Devices)
	}
	if !slices.Contains(sp.Process.Env, "PATH=/usr/bin:/bin") || slices.Contains(sp.Process.Env, "LANG=C") {
		t.Errorf("env = %q (want the image's PATH, the spec's LANG)", sp.Process.Env)
	}
	for _, m := range sp.Mounts {
		if m.Type == "bind" && (slices.Contains(m.Options, "rbind") || !slices.Contains(m.Options, "nosuid")) {
			t.Errorf("bind %s: options %v", m.Destination, m.Options)
		}
		if m.Destination == "/tmp" && !slices.Contains(m.Options, "noexec") {
			t.Errorf("/tmp options %v", m.Options)
		}
	}
	// A file mounted inside a mounted directory comes after it.
	s2 := testSpec()
	s2.Mounts = append([]engine.Mount{{Source: "/srv/cred", Target: "/run/secrets/cred", ReadOnly: true}}, s2.Mounts...)
	s2.Mounts = append(s2.Mounts, engine.Mount{Source: "/srv/secrets", Target: "/run/secrets", ReadOnly: true})
	sp2, err := buildSpec(s2, ImageConfig{}, testNS, "/runner")
	if err != nil {
		t.Fatal(err)
	}
	at := func(dest string) int {
		return slices.IndexFunc(sp2.Mounts, func(m specs.Mount) bool { return m.Destination == dest })
	}
	if at("/run/secrets") > at("/run/secrets/cred") {
		t.Errorf("/run/secrets is mounted after /run/secrets/cred, hiding it: %v", sp2.Mounts)
	}
	if sp.Hooks != nil || len(sp.Linux.Sysctl) > 0 {
		t.Errorf("hooks %v, sysctl %v", sp.Hooks, sp.Linux.Sysctl)
	}
}

func TestSpecRefusals(t *testing.T) {
	for name, mut := range map[string]func(*engine.Spec){
		"bridge":  func(s *engine.Spec) { s.Network = "bridge" },
		"no-user": func(s *engine.Spec) { s.User = "" },
		"no-nnp":  func(s *engine.Spec) { s.NoNewPrivileges = false },
		"rw-root": func(s *engine.Spec) { s.ReadonlyRootfs = false },
		"caps":    func(s *engine.Spec) { s.CapDrop = nil },
		"runsc":   func(s *engine.Spec) { s.Runtime = "runsc" },
	} {
		s := testSpec()
		mut(&s)
		if _, err := buildSpec(s, ImageConfig{}, testNS, "/runner"); err == nil {
			t.Errorf("%s: no error", name)
		} else if name == "bridge" && !strings.Contains(err.Error(), `network = "none"`) {
			t.Errorf("bridge: %v", err)
		}
	}
	if _, err := buildSpec(testSpec(), ImageConfig{}, uids.Mapping{}, "/runner"); err == nil {
		t.Error("no user namespace: no error")
	}
}

// The spec read back passes Check unchanged; every weakening of it, made
// in the stored OCI spec, is a violation naming the setting.
func TestObserveFailsClosed(t *testing.T) {
	s := testSpec()
	if vs := profile.Check(s, roundTrip(t, s, nil)); len(vs) != 0 {
		t.Fatalf("unchanged spec: %v", vs)
	}
	cases := map[string]struct {
		mut     func(*specs.Spec)
		setting string
	}{
		"cap":          {func(sp *specs.Spec) { sp.Process.Capabilities.Bounding = []string{"CAP_SYS_ADMIN"} }, "CapAdd"},
		"no-caps":      {func(sp *specs.Spec) { sp.Process.Capabilities = nil }, "CapAdd"},
		"nnp":          {func(sp *specs.Spec) { sp.Process.NoNewPrivileges = false }, "NoNewPrivileges"},
		"seccomp-none": {func(sp *specs.Spec) { sp.Linux.Seccomp = nil }, "SeccompProfile"},
		"seccomp-weak": {func(sp *specs.Spec) { sp.Linux.Seccomp.DefaultAction = specs.ActAllow }, "SeccompProfile"},
		"rw-root":      {func(sp *specs.Spec) { sp.Root.Readonly = false }, "ReadonlyRootfs"},
		"uid0":         {func(sp *specs.Spec) { sp.Process.User.UID = 0 }, "User"},
		"memory":       {func(sp *specs.Spec) { sp.Linux.Resources.Memory = nil }, "Memory"},
		"pids":         {func(sp *specs.Spec) { sp.Linux.Resources.Pids = nil }, "PidsLimit"},
		"cpu":          {func(sp *specs.Spec) { *sp.Linux.Resources.CPU.Quota = -1 }, "NanoCPUs"},
		"host-net":     {func(sp *specs.Spec) { sp.Linux.Namespaces = dropNS(sp.Linux.Namespaces, specs.NetworkNamespace) }, "NetworkMode"},
		"joined-pid":   {func(sp *specs.Spec) { setNSPath(sp, specs.PIDNamespace, "/proc/1/ns/pid") }, "PidMode"},
		"no-userns":    {func(sp *specs.Spec) { sp.Linux.Namespaces = dropNS(sp.Linux.Namespaces, specs.UserNamespace) }, "UsernsMode"},
		"root-mapped":  {func(sp *specs.Spec) { sp.Linux.UIDMappings[0].HostID = 0 }, "UsernsMode"},
		"device": {func(sp *specs.Spec) {
			sp.Linux.Devices = append(sp.Linux.Devices, specs.LinuxDevice{Path: "/dev/sda", Type: "b", Major: 8})
		}, "Devices"},
		"allow-all-dev": {func(sp *specs.Spec) {
			sp.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
		}, "Devices"},
		"masked":   {func(sp *specs.Spec) { sp.Linux.MaskedPaths = sp.Linux.MaskedPaths[1:] }, "MaskedPaths"},
		"readonly": {func(sp *specs.Spec) { sp.Linux.ReadonlyPaths = nil }, "ReadonlyPaths"},
		"hooks":    {func(sp *specs.Spec) { sp.Hooks = &specs.Hooks{} }, "Privileged"},
		"rbind":    {func(sp *specs.Spec) { setOpts(sp, "/work", "rbind", "rprivate", "rw") }, "Mounts[/work]"},
		"extra-mount": {func(sp *specs.Spec) {
			sp.Mounts = append(sp.Mounts, bindMount(engine.Mount{Source: "/", Target: "/host"}))
		}, "Mounts[/host]"},
		"tmpfs-exec": {func(sp *specs.Spec) { setOpts(sp, "/tmp", "rw", "size=1") }, "Tmpfs[/tmp]"},
		"rw-sys":     {func(sp *specs.Spec) { setOpts(sp, "/sys", "nosuid") }, "Mounts[/sys]"},
		"no-proc":    {func(sp *specs.Spec) { sp.Mounts = sp.Mounts[1:] }, "Mounts[/proc]"},
		"args":       {func(sp *specs.Spec) { sp.Process.Args = []string{"/bin/sh"} }, "Entrypoint"},
	}
	for name, c := range cases {
		vs := profile.Check(s, roundTrip(t, s, c.mut))
		if !slices.ContainsFunc(vs, func(v profile.Violation) bool { return v.Setting == c.setting }) {
			t.Errorf("%s: no %s violation in %v", name, c.setting, vs)
		}
	}
}

// What the kernel shows of the task's init process overrides the spec.
func TestProcStateOverridesSpec(t *testing.T) {
	s := testSpec()
	good := "Uid:\t240001\t240001\t240001\t240001\nGid:\t240001\t240001\t240001\t240001\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t0000000000000000\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n"
	for name, c := range map[string]struct {
		status  string
		uidMap  []uids.Extent
		setting string
	}{
		"good":    {good, testNS.UID, ""},
		"capbnd":  {strings.Replace(good, "CapBnd:\t0000000000000000", "CapBnd:\t000001ffffffffff", 1), testNS.UID, "CapAdd"},
		"nnp":     {strings.Replace(good, "NoNewPrivs:\t1", "NoNewPrivs:\t0", 1), testNS.UID, "NoNewPrivileges"},
		"seccomp": {strings.Replace(good, "Seccomp:\t2", "Seccomp:\t0", 1), testNS.UID, "SeccompProfile"},
		"euid":    {strings.Replace(good, "Uid:\t240001\t240001", "Uid:\t240001\t0", 1), testNS.UID, "User"},
		"uid_map": {good, []uids.Extent{{Inside: 0, Outside: 0, Count: 4294967295}}, "UsernsMode"},
	} {
		ps, err := parseProcStatus(c.status)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ps.UIDMap, ps.GIDMap = c.uidMap, testNS.GID
		sp, _ := buildSpec(s, ImageConfig{}, testNS, "/runner")
		vs := profile.Check(s, observe(record{ID: "0123abcd", Image: s.Image, Labels: withName(s), Spec: sp, Proc: ps}))
		switch {
		case c.setting == "" && len(vs) != 0:
			t.Errorf("%s: %v", name, vs)
		case c.setting != "" && !slices.ContainsFunc(vs, func(v profile.Violation) bool { return v.Setting == c.setting }):
			t.Errorf("%s: no %s violation in %v", name, c.setting, vs)
		}
	}
	if _, err := parseProcStatus("Uid:\t1\t1\t1\t1\n"); err == nil {
		t.Error("a partial status parsed")
	}
}

func dropNS(nss []specs.LinuxNamespace, k specs.LinuxNamespaceType) []specs.LinuxNamespace {
	return slices.DeleteFunc(nss, func(n specs.LinuxNamespace) bool { return n.Type == k })
}

func setNSPath(sp *specs.Spec, k specs.LinuxNamespaceType, p string) {
	for i := range sp.Linux.Namespaces {
		if sp.Linux.Namespaces[i].Type == k {
			sp.Linux.Namespaces[i].Path = p
		}
	}
}

func setOpts(sp *specs.Spec, dest string, opts ...string) {
	for i := range sp.Mounts {
		if sp.Mounts[i].Destination == dest {
			sp.Mounts[i].Options = opts
		}
	}
}

// withName is the labels Create gives a container: the spec's and its name.
func withName(s engine.Spec) map[string]string {
	l := map[string]string{labelName: s.Name}
	for k, v := range s.Labels {
		l[k] = v
	}
	return l
}
