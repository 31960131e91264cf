package containerd

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/engine/ocispec"
	"github.com/runner-dev/runner/internal/uids"
)

// record is what containerd holds for one container, plus what the kernel
// says about its task's init process, read back for the fail-closed check.
type record struct {
	ID     string
	Image  string
	Labels map[string]string
	Spec   *specs.Spec
	// State is the task's: "" (no task), "created", "running", "stopped",
	// "paused", ...
	State    string
	ExitCode int
	Started  time.Time
	// Runtime is containerd's runtime name (io.containerd.runc.v2).
	Runtime string
	// Proc is the task's init process as /proc shows it (nil without a
	// task, or when the engine is not on this host).
	Proc *procState
}

// labelStarted records when Start started the task (containerd keeps no
// start time).
const labelStarted = "dev.runner.started-at"

// observe translates a record into engine terms. Everything comes from the
// stored OCI spec and the kernel, never from runner's own notes alone: the
// annotations runner writes are only used where they are checked against
// the real fields (seccomp, tmpfs), or where a lie can only make Check
// refuse (entrypoint split, health check).
//
// Settings the OCI spec has and engine.Observed does not (hooks, sysctls,
// a shared rootfs propagation, an allow-all device rule, a terminal, an
// extra mount type) make the container look privileged, so Check refuses
// it.
func observe(r record) engine.Observed {
	o := engine.Observed{ID: r.ID, Name: r.Labels[labelName], Image: r.Image, Labels: r.Labels}
	o.State = taskState(r.State)
	o.ExitCode = r.ExitCode
	o.StartedAt = r.Started
	o.Runtime = r.Runtime
	if r.Runtime == runtimeName {
		o.Runtime = "runc"
	}
	sp := r.Spec
	if sp == nil || sp.Process == nil || sp.Linux == nil || sp.Root == nil {
		o.Privileged = true // no spec to prove anything with
		o.NetworkMode, o.UsernsMode = "host", "host"
		return o
	}
	p, l := sp.Process, sp.Linux

	o.User = ocispec.User(p)
	o.Env = p.Env
	n, err := strconv.Atoi(sp.Annotations[annoEntrypoint])
	if err != nil || n < 0 || n > len(p.Args) {
		n = 0
	}
	o.Entrypoint, o.Cmd = p.Args[:n], p.Args[n:]
	o.NoNewPrivileges = p.NoNewPrivileges
	o.ReadonlyRootfs = sp.Root.Readonly

	// Capabilities: every set must be empty; a spec without the section
	// leaves the process root's.
	if p.Capabilities == nil {
		o.CapAdd = []string{"(no capabilities section: the process keeps all of root's)"}
	} else {
		c := p.Capabilities
		for _, set := range [][]string{c.Bounding, c.Effective, c.Permitted, c.Inheritable, c.Ambient} {
			for _, cp := range set {
				if !slices.Contains(o.CapAdd, cp) {
					o.CapAdd = append(o.CapAdd, cp)
				}
			}
		}
		if len(o.CapAdd) == 0 {
			o.CapDrop = []string{"ALL"}
		}
	}
	if p.Terminal || p.SelinuxLabel != "" || sp.Hooks != nil || // even an empty section: runner writes none
		len(l.Sysctl) > 0 ||
		(l.RootfsPropagation != "" && l.RootfsPropagation != "private" && l.RootfsPropagation != "rprivate") ||
		l.IntelRdt != nil || l.Personality != nil {
		o.Privileged = true
	}

	o.SeccompProfile = ocispec.Seccomp(sp)

	// Limits.
	if res := l.Resources; res != nil {
		if m := res.Memory; m != nil {
			if m.Limit != nil {
				o.Memory = *m.Limit
			}
			if m.Swap != nil {
				o.MemorySwap = *m.Swap
			}
		}
		if c := res.CPU; c != nil && c.Quota != nil && c.Period != nil && *c.Period > 0 {
			o.NanoCPUs = *c.Quota * 1e9 / int64(*c.Period)
		}
		if res.Pids != nil && res.Pids.Limit != nil {
			o.PidsLimit = *res.Pids.Limit
		}
		o.Devices += ocispec.ExtraDeviceRules(res.Devices, minimalDeviceRules()[1:], true)
	} else {
		o.Devices++ // no device cgroup: every device allowed
	}
	o.Devices += ocispec.ExtraDevices(l.Devices, minimalDevices)

	// Namespaces: each must be new; a missing one is the host's.
	o.NetworkMode = "host"
	o.PidMode, o.IpcMode, o.UTSMode, o.UsernsMode, o.CgroupnsMode = "host", "host", "host", "host", "host"
	mnt := false
	for _, ns := range l.Namespaces {
		mode := ""
		if ns.Path != "" {
			mode = "ns:" + ns.Path
		}
		switch ns.Type {
		case specs.NetworkNamespace:
			o.NetworkMode = "none" // a new one, and runner sets up no CNI: only lo
			if mode != "" {
				o.NetworkMode = mode
			}
		case specs.PIDNamespace:
			o.PidMode = mode
		case specs.IPCNamespace:
			o.IpcMode = mode
		case specs.UTSNamespace:
			o.UTSMode = mode
		case specs.UserNamespace:
			o.UsernsMode = mode
		case specs.CgroupNamespace:
			o.CgroupnsMode = mode
		case specs.MountNamespace:
			mnt = ns.Path == ""
		}
	}
	if !mnt {
		o.Privileged = true
	}
	// Container root must not be host root: no mapping, or one that maps
	// any container id onto host uid/gid 0, is the host's namespace.
	if o.UsernsMode == "" && (!ocispec.SafeIDMap(l.UIDMappings) || !ocispec.SafeIDMap(l.GIDMappings)) {
		o.UsernsMode = "host"
	}

	o.MaskedPaths = l.MaskedPaths
	o.ReadonlyPaths = l.ReadonlyPaths
	observeMounts(&o, sp)

	if h := sp.Annotations[annoHealth]; h != "" {
		var hc engine.Health
		if json.Unmarshal([]byte(h), &hc) == nil {
			o.Health = &hc
		}
	}
	if r.Proc != nil {
		r.Proc.apply(&o, l)
	}
	return o
}

func taskState(s string) string {
	switch s {
	case "", "created":
		return "created"
	case "stopped":
		return "exited"
	}
	return s
}

// observeMounts reads the mounts back: the kernel filesystems must be
// exactly runner's, tmpfs options exactly the translation of the Spec's
// (recorded in annoTmpfs; reported as given when they match, as the raw
// options when not), binds as engine mounts. Anything else is reported as
// a mount, which Check refuses as unwanted.
func observeMounts(o *engine.Observed, sp *specs.Spec) {
	var given map[string]string
	json.Unmarshal([]byte(sp.Annotations[annoTmpfs]), &given)
	base := baseMounts()
	for _, m := range sp.Mounts {
		if i := slices.IndexFunc(base, func(b specs.Mount) bool { return b.Destination == m.Destination }); i >= 0 {
			if reflect.DeepEqual(base[i], m) {
				base = slices.Delete(base, i, i+1)
				continue
			}
		}
		isBind := ocispec.IsBind(m)
		switch {
		case m.Type == "tmpfs" && !isBind:
			if o.Tmpfs == nil {
				o.Tmpfs = map[string]string{}
			}
			if g, ok := given[m.Destination]; ok && slices.Equal(tmpfsOptions(g), m.Options) {
				o.Tmpfs[m.Destination] = g
			} else {
				o.Tmpfs[m.Destination] = strings.Join(m.Options, ",")
			}
		case isBind && slices.Equal(m.Options, bindMount(engine.Mount{ReadOnly: true}).Options):
			o.Mounts = append(o.Mounts, engine.Mount{Source: m.Source, Target: m.Destination, ReadOnly: true})
		case isBind && slices.Equal(m.Options, bindMount(engine.Mount{}).Options):
			o.Mounts = append(o.Mounts, engine.Mount{Source: m.Source, Target: m.Destination})
		default:
			// A recursive, shared, suid or otherwise different mount.
			o.Mounts = append(o.Mounts, ocispec.Other(m))
		}
	}
	// A kernel filesystem runner mounts that is missing (an unmasked host
	// /proc would come through a bind) counts as a violation too.
	for _, b := range base {
		o.Mounts = append(o.Mounts, engine.Mount{Source: "(missing " + b.Type + ")", Target: b.Destination})
	}
}

// procState is a task's init process as the host kernel reports it.
type procState struct {
	UID, GID                               []uint32 // real, effective, saved, fs
	CapInh, CapPrm, CapEff, CapBnd, CapAmb uint64
	NoNewPrivs, Seccomp                    int
	UIDMap, GIDMap                         []uids.Extent
}

// parseProcStatus reads the fields of /proc/PID/status that matter.
func parseProcStatus(text string) (*procState, error) {
	ps := &procState{NoNewPrivs: -1, Seccomp: -1}
	seen := 0
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		var err error
		switch k {
		case "Uid", "Gid":
			var ids []uint32
			for _, f := range strings.Fields(v) {
				n, e := strconv.ParseUint(f, 10, 32)
				if e != nil {
					err = e
				}
				ids = append(ids, uint32(n))
			}
			if k == "Uid" {
				ps.UID = ids
			} else {
				ps.GID = ids
			}
		case "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb":
			n, e := strconv.ParseUint(v, 16, 64)
			err = e
			*map[string]*uint64{"CapInh": &ps.CapInh, "CapPrm": &ps.CapPrm, "CapEff": &ps.CapEff, "CapBnd": &ps.CapBnd, "CapAmb": &ps.CapAmb}[k] = n
		case "NoNewPrivs":
			ps.NoNewPrivs, err = strconv.Atoi(v)
		case "Seccomp":
			ps.Seccomp, err = strconv.Atoi(v)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("/proc status line %q: %w", line, err)
		}
		seen++
	}
	if seen != 9 || len(ps.UID) != 4 || len(ps.GID) != 4 {
		return nil, fmt.Errorf("/proc status: want Uid, Gid, 5 capability sets, NoNewPrivs and Seccomp, found %d of them", seen)
	}
	return ps, nil
}

// apply overrides what the spec says with what the kernel shows, where
// they differ: the process is the truth.
func (ps *procState) apply(o *engine.Observed, l *specs.Linux) {
	for _, c := range []struct {
		name string
		v    uint64
	}{{"CapInh", ps.CapInh}, {"CapPrm", ps.CapPrm}, {"CapEff", ps.CapEff}, {"CapBnd", ps.CapBnd}, {"CapAmb", ps.CapAmb}} {
		if c.v != 0 {
			o.CapAdd = append(o.CapAdd, fmt.Sprintf("kernel:%s=%016x", c.name, c.v))
			o.CapDrop = nil
		}
	}
	if ps.NoNewPrivs != 1 {
		o.NoNewPrivileges = false
	}
	if ps.Seccomp != 2 {
		o.SeccompProfile = "unconfined"
	}
	// Every uid of the process (real, effective, saved, fs) is the spec's.
	// The host's /proc shows host ids: they are taken back through the
	// namespace's map (an id outside it shows as the host id, "host:N").
	inside := func(es []uids.Extent, id uint32) string {
		for _, e := range es {
			if uint64(id) >= e.Outside && uint64(id) < e.Outside+e.Count {
				return strconv.FormatUint(uint64(id)-e.Outside+e.Inside, 10)
			}
		}
		return "host:" + strconv.FormatUint(uint64(id), 10)
	}
	for _, ids := range [][]uint32{ps.UID, ps.GID} {
		for _, id := range ids {
			if id != ids[0] {
				o.User = fmt.Sprintf("kernel:%v/%v", ps.UID, ps.GID)
			}
		}
	}
	if u := inside(ps.UIDMap, ps.UID[0]) + ":" + inside(ps.GIDMap, ps.GID[0]); !strings.HasPrefix(o.User, "kernel:") && u != o.User {
		o.User = u
	}
	if ps.UIDMap != nil && (!slices.Equal(ps.UIDMap, extents(l.UIDMappings)) || !slices.Equal(ps.GIDMap, extents(l.GIDMappings))) {
		o.UsernsMode = "host"
	}
}

func extents(m []specs.LinuxIDMapping) []uids.Extent {
	out := make([]uids.Extent, 0, len(m))
	for _, e := range m {
		out = append(out, uids.Extent{Inside: uint64(e.ContainerID), Outside: uint64(e.HostID), Count: uint64(e.Size)})
	}
	return out
}
