// Package ocispec reads security settings back from an OCI runtime spec
// (config.json), for the engines whose read-back is the spec the runtime
// is given (containerd, Podman). Each function fails closed: what it cannot
// account for is reported so that profile.Check refuses it.
package ocispec

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runner-dev/runner/internal/engine"
)

// AnnoSeccomp records the Docker-format profile the runtime's filter was
// compiled from, so the read-back can compile it again and compare.
const AnnoSeccomp = "dev.runner.seccomp"

// Seccomp returns the Docker-format profile the spec's filter was built
// from, if the filter is exactly its translation; "" without a filter; and
// a JSON document that matches no profile otherwise.
func Seccomp(sp *specs.Spec) string {
	if sp.Linux == nil || sp.Linux.Seccomp == nil {
		return ""
	}
	src := sp.Annotations[AnnoSeccomp]
	if src == "" {
		return `{"runner":"a seccomp filter without its recorded profile"}`
	}
	// The translation depends on the spec's capabilities, as at create.
	want, err := seccomp.LoadProfile(src, sp)
	if err != nil || want == nil || !reflect.DeepEqual(norm(want), norm(sp.Linux.Seccomp)) {
		return `{"runner":"a seccomp filter that is not its recorded profile"}`
	}
	return src
}

// norm re-encodes v so nil and empty slices compare equal (the spec came
// back through JSON).
func norm(v any) any {
	b, _ := json.Marshal(v)
	var out any
	json.Unmarshal(b, &out)
	return out
}

// User is the process's uid:gid as the runtime sets it.
func User(p *specs.Process) string {
	return fmt.Sprintf("%d:%d", p.User.UID, p.User.GID)
}

// Hooks reports whether the spec runs any hook, of any of the six kinds:
// each runs a host program outside every setting read back.
func Hooks(sp *specs.Spec) bool {
	h := sp.Hooks
	return h != nil && len(h.Prestart)+len(h.CreateRuntime)+len(h.CreateContainer)+len(h.StartContainer)+len(h.Poststart)+len(h.Poststop) > 0
}

// SafeIDMap: at least one extent, and none reaching host id 0.
func SafeIDMap(m []specs.LinuxIDMapping) bool {
	if len(m) == 0 {
		return false
	}
	for _, e := range m {
		if e.HostID == 0 || e.Size == 0 {
			return false
		}
	}
	return true
}

// Device is a character device node a container may have.
type Device struct {
	Path         string
	Major, Minor int64
}

// ExtraDevices counts device nodes other than the allowed ones.
func ExtraDevices(ds []specs.LinuxDevice, allowed []Device) int {
	n := 0
	for _, d := range ds {
		if d.Type != "c" || !slices.Contains(allowed, Device{d.Path, d.Major, d.Minor}) {
			n++
		}
	}
	return n
}

// ExtraDeviceRules counts device cgroup allow rules other than the allowed
// ones (a deny only narrows). With denyFirst, a list that does not start
// with deny-all counts as one more: every device is then allowed.
func ExtraDeviceRules(rules, allowed []specs.LinuxDeviceCgroup, denyFirst bool) int {
	n := 0
	if denyFirst && (len(rules) == 0 || rules[0].Allow || rules[0].Type != "" && rules[0].Type != "a" || rules[0].Major != nil || rules[0].Minor != nil) {
		n++
	}
	for i, r := range rules {
		if denyFirst && i == 0 {
			continue // counted above
		}
		if r.Allow && !slices.ContainsFunc(allowed, func(a specs.LinuxDeviceCgroup) bool { return sameRule(a, r) }) {
			n++
		}
	}
	return n
}

func sameRule(a, b specs.LinuxDeviceCgroup) bool {
	eq := func(x, y *int64) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return a.Allow == b.Allow && a.Type == b.Type && eq(a.Major, b.Major) && eq(a.Minor, b.Minor) && a.Access == b.Access
}

// IsBind reports whether m is a bind mount of any kind.
func IsBind(m specs.Mount) bool {
	return m.Type == "bind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind")
}

// Other is the report of a mount the read-back cannot account for: its
// type and options in Source, so the refusal says what it is.
func Other(m specs.Mount) engine.Mount {
	return engine.Mount{Source: m.Type + ":" + m.Source + " (" + strings.Join(m.Options, ",") + ")", Target: m.Destination, ReadOnly: slices.Contains(m.Options, "ro")}
}

// MinimalDevices are the device nodes every container has (the runtime
// bind-mounts them from the host inside a user namespace), and nothing
// else: no disk, no tun, no console of the host.
var MinimalDevices = []Device{
	{Path: "/dev/null", Major: 1, Minor: 3}, {Path: "/dev/zero", Major: 1, Minor: 5}, {Path: "/dev/full", Major: 1, Minor: 7},
	{Path: "/dev/random", Major: 1, Minor: 8}, {Path: "/dev/urandom", Major: 1, Minor: 9}, {Path: "/dev/tty", Major: 5, Minor: 0},
}

// MinimalDeviceRules are the device cgroup: deny all, then allow the nodes
// above plus the pty multiplexer and the ptys tmux opens (no mknod).
func MinimalDeviceRules() []specs.LinuxDeviceCgroup {
	rules := []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
	for _, d := range MinimalDevices {
		rules = append(rules, devRule(d.Major, d.Minor))
	}
	rules = append(rules, devRule(5, 2)) // /dev/ptmx
	rules = append(rules, specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: ptr(int64(136)), Access: "rwm"})
	return rules
}

func devRule(major, minor int64) specs.LinuxDeviceCgroup {
	return specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: ptr(major), Minor: ptr(minor), Access: "rwm"}
}

func ptr[T any](v T) *T { return &v }
