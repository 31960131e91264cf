package containerd

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/engine/ocispec"
	"github.com/runner-dev/runner/internal/uids"
)

// Annotations runner writes into the OCI spec: what Docker keeps in its own
// container record and the OCI spec has no field for. Each is read back
// and checked against the spec's real fields (observe), so changing one
// cannot hide a weaker setting.
const (
	// annoEntrypoint is how many of Process.Args are the entrypoint (the
	// rest are Cmd).
	annoEntrypoint = "dev.runner.entrypoint-args"
	// annoSeccomp is the Docker-format profile the filter was built from;
	// observe requires Linux.Seccomp to be exactly its translation.
	annoSeccomp = ocispec.AnnoSeccomp
	// annoHealth is the health check (JSON of engine.Health), run on
	// demand: containerd has no health checks of its own.
	annoHealth = "dev.runner.health"
	// annoTmpfs is the tmpfs options as the Spec gave them (JSON map);
	// observe requires the real mounts to be exactly what they translate to.
	annoTmpfs = "dev.runner.tmpfs"
)

// cpuPeriod is the CFS period NanoCPUs is expressed in (Docker's too).
const cpuPeriod = 100000

// nsKinds are the namespaces every container gets fresh: none is shared
// with the host, and network none is a new network namespace (only lo).
var nsKinds = []specs.LinuxNamespaceType{
	specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.MountNamespace,
	specs.NetworkNamespace, specs.UserNamespace, specs.CgroupNamespace,
}

// minimalDevices are the device nodes every container has, and nothing
// else (ocispec.MinimalDevices).
var minimalDevices = ocispec.MinimalDevices

func minimalDeviceRules() []specs.LinuxDeviceCgroup { return ocispec.MinimalDeviceRules() }

func i64(v int64) *int64 { return &v }

// ImageConfig is what a container takes from its image: the environment
// (PATH) that Docker also merges in.
type ImageConfig struct {
	Env []string
}

// buildSpec translates the engine-neutral Spec into the OCI runtime spec,
// field by field from nothing: containerd's default spec runs as uid 0 with
// 14 capabilities and no seccomp, so none of it is used. ns is the user
// namespace the container gets (container ids to host ids).
func buildSpec(s engine.Spec, img ImageConfig, ns uids.Mapping, cgroupParent string) (*specs.Spec, error) {
	uid, gid, ok := uids.ParseUser(s.User)
	if !ok {
		return nil, fmt.Errorf("containerd: user %q is not a numeric uid:gid", s.User)
	}
	if s.Network != "none" {
		return nil, fmt.Errorf("containerd: network %q is not supported on engine \"containerd\" (runner sets up no CNI): use network = \"none\" (egress goes through the run's proxy socket), or engine = \"docker\" for a bridge network", s.Network)
	}
	if s.Runtime != "" && s.Runtime != "runc" {
		return nil, fmt.Errorf("containerd: runtime %q is not offered on engine \"containerd\" (runner runs runc there): use engine = \"docker\" for gVisor", s.Runtime)
	}
	if len(ns.UID) == 0 || len(ns.GID) == 0 {
		return nil, fmt.Errorf("containerd: no user namespace mapping for %s: every containerd container gets one", s.Name)
	}
	if !s.NoNewPrivileges || !s.ReadonlyRootfs || len(s.CapDrop) != 1 || s.CapDrop[0] != "ALL" {
		return nil, fmt.Errorf("containerd: spec for %s is not hardened (no-new-privileges, read-only rootfs, CapDrop [ALL] are required)", s.Name)
	}
	none := []string{}
	sp := &specs.Spec{
		Version:  specs.Version,
		Hostname: s.Hostname,
		Root:     &specs.Root{Path: "rootfs", Readonly: true},
		Process: &specs.Process{
			Args: append(slices.Clone(s.Entrypoint), s.Cmd...),
			Env:  mergeEnv(img.Env, s.Env),
			Cwd:  s.Workdir,
			User: specs.User{UID: uid, GID: gid},
			Capabilities: &specs.LinuxCapabilities{
				Bounding: none, Effective: none, Inheritable: none, Permitted: none, Ambient: none,
			},
			NoNewPrivileges: true,
		},
		Annotations: map[string]string{
			annoEntrypoint: strconv.Itoa(len(s.Entrypoint)),
			annoSeccomp:    s.SeccompJSON,
		},
		Linux: &specs.Linux{
			UIDMappings: idMappings(ns.UID),
			GIDMappings: idMappings(ns.GID),
			Resources: &specs.LinuxResources{
				Devices: minimalDeviceRules(),
				Memory:  &specs.LinuxMemory{Limit: i64(s.Memory), Swap: i64(s.Memory)},
				CPU:     &specs.LinuxCPU{Quota: i64(s.NanoCPUs * cpuPeriod / 1e9), Period: u64(cpuPeriod)},
				Pids:    &specs.LinuxPids{Limit: i64(s.PidsLimit)},
			},
			CgroupsPath:   cgroupParent + "/" + s.Name,
			MaskedPaths:   slices.Clone(s.MaskedPaths),
			ReadonlyPaths: slices.Clone(s.ReadonlyPaths),
		},
	}
	if s.Workdir == "" {
		sp.Process.Cwd = "/"
	}
	for _, k := range nsKinds {
		sp.Linux.Namespaces = append(sp.Linux.Namespaces, specs.LinuxNamespace{Type: k})
	}
	for _, d := range minimalDevices {
		mode := os.FileMode(0o666)
		sp.Linux.Devices = append(sp.Linux.Devices, specs.LinuxDevice{
			Path: d.Path, Type: "c", Major: d.Major, Minor: d.Minor, FileMode: &mode, UID: u32(0), GID: u32(0),
		})
	}
	if s.Health != nil {
		b, err := json.Marshal(s.Health)
		if err != nil {
			return nil, err
		}
		sp.Annotations[annoHealth] = string(b)
	}
	tb, err := json.Marshal(s.Tmpfs)
	if err != nil {
		return nil, err
	}
	sp.Annotations[annoTmpfs] = string(tb)

	var own []specs.Mount
	for _, p := range sortedKeys(s.Tmpfs) {
		own = append(own, specs.Mount{Destination: p, Type: "tmpfs", Source: "tmpfs", Options: tmpfsOptions(s.Tmpfs[p])})
	}
	for _, m := range s.Mounts {
		own = append(own, bindMount(m))
	}
	// Parents before children, as Docker orders them: a directory mounted
	// after a file inside it (/run/secrets after the relay credential at
	// /run/secrets/runner-credential) would hide the file.
	sort.SliceStable(own, func(i, j int) bool { return depth(own[i].Destination) < depth(own[j].Destination) })
	sp.Mounts = append(baseMounts(), own...)

	// The profile is translated as Docker does (moby/profiles): with no
	// capabilities in the spec, no capability-gated rule is included.
	filter, err := seccomp.LoadProfile(s.SeccompJSON, sp)
	if err != nil {
		return nil, fmt.Errorf("containerd: the seccomp profile: %w", err)
	}
	if filter == nil {
		return nil, fmt.Errorf("containerd: the seccomp profile for %s is empty", s.Name)
	}
	sp.Linux.Seccomp = filter
	return sp, nil
}

// baseMounts are the kernel filesystems every container has, as runc's
// and Docker's defaults, with /sys and the cgroup tree read-only.
func baseMounts() []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
	}
}

// tmpfsDefaults are the options Docker puts before a tmpfs's own.
var tmpfsDefaults = []string{"noexec", "nosuid", "nodev"}

// tmpfsOptions are a Spec tmpfs's options as Docker applies them: its
// defaults, then the given ones (an "exec" given would cancel "noexec").
func tmpfsOptions(opts string) []string {
	out := slices.Clone(tmpfsDefaults)
	for _, o := range strings.Split(opts, ",") {
		if o = strings.TrimSpace(o); o == "" || slices.Contains(out, o) {
			continue
		}
		if o == "exec" {
			out = slices.DeleteFunc(out, func(s string) bool { return s == "noexec" })
		}
		out = append(out, o)
	}
	return out
}

// bindMount is a non-recursive bind (nothing mounted beneath the source
// comes along), private, nosuid and nodev.
func bindMount(m engine.Mount) specs.Mount {
	mode := "rw"
	if m.ReadOnly {
		mode = "ro"
	}
	return specs.Mount{Destination: m.Target, Type: "bind", Source: m.Source, Options: []string{"bind", "rprivate", "nosuid", "nodev", mode}}
}

func idMappings(es []uids.Extent) []specs.LinuxIDMapping {
	out := make([]specs.LinuxIDMapping, 0, len(es))
	for _, e := range es {
		out = append(out, specs.LinuxIDMapping{ContainerID: uint32(e.Inside), HostID: uint32(e.Outside), Size: uint32(e.Count)})
	}
	return out
}

// mergeEnv is the image's environment overridden by the spec's, as Docker
// merges them: by key, the spec's last.
func mergeEnv(image, spec []string) []string {
	seen := map[string]int{}
	var out []string
	for _, kv := range append(slices.Clone(image), spec...) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := seen[k]; ok {
			out[i] = kv
			continue
		}
		seen[k] = len(out)
		out = append(out, kv)
	}
	return out
}

// depth is how many components a mount destination has.
func depth(p string) int { return strings.Count(filepath.Clean(p), "/") }

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func u64(v uint64) *uint64 { return &v }
func u32(v uint32) *uint32 { return &v }
