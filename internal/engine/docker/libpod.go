package docker

// Podman's own API (/libpod/...), on the same socket as its Docker-compatible
// one, for what the compatible API cannot do:
//
//   - create: the compatible create ignores MaskedPaths and CgroupnsMode and
//     adds unsized read-write tmpfs on /run and /var/tmp to every read-only
//     container (Podman's --read-only-tmpfs, which it cannot turn off).
//     Podman's SpecGenerator says exactly what runner's Spec says, so every
//     Podman container is created through it, and initialised at once (the
//     OCI runtime's spec is written, nothing runs) so it can be read back.
//   - read-back: the compatible inspect reports Podman's bookkeeping (the
//     dropped-capability list expanded, no masked paths, "shareable" IPC),
//     not what the runtime is given. The read-back reads the OCI spec Podman
//     wrote for the runtime (config.json in the container's static
//     directory, which libpod's inspect names) and takes every security
//     setting from it; the rest comes from the compatible inspect.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/engine/ocispec"
)

// libpodVersion is the API version in libpod paths; Podman 4 serves 4.x.
const libpodVersion = "v4.0.0"

// annoSeccomp records the Docker-format profile the runtime's filter was
// compiled from, so the read-back can compile it again and compare.
const annoSeccomp = ocispec.AnnoSeccomp

// The part of Podman's SpecGenerator runner sets. Anything left out is
// Podman's default, which the read-back then sees.
type specGen struct {
	Name         string                `json:"name"`
	Image        string                `json:"image"`
	Entrypoint   []string              `json:"entrypoint"`
	Command      []string              `json:"command"`
	Env          map[string]string     `json:"env,omitempty"`
	User         string                `json:"user,omitempty"`
	WorkDir      string                `json:"work_dir,omitempty"`
	Hostname     string                `json:"hostname,omitempty"`
	Labels       map[string]string     `json:"labels,omitempty"`
	Annotations  map[string]string     `json:"annotations,omitempty"`
	CapDrop      []string              `json:"cap_drop"`
	NoNewPrivs   bool                  `json:"no_new_privileges"`
	SeccompPath  string                `json:"seccomp_profile_path,omitempty"`
	ReadOnly     bool                  `json:"read_only_filesystem"`
	Mounts       []specs.Mount         `json:"mounts,omitempty"`
	Mask         []string              `json:"mask,omitempty"`
	NetNS        sgNamespace           `json:"netns"`
	IpcNS        sgNamespace           `json:"ipcns"`
	CgroupNS     sgNamespace           `json:"cgroupns"`
	PidNS        sgNamespace           `json:"pidns"`
	UtsNS        sgNamespace           `json:"utsns"`
	Init         bool                  `json:"init"`
	Restart      string                `json:"restart_policy"`
	ImageVolumes string                `json:"image_volume_mode"`
	Resources    *specs.LinuxResources `json:"resource_limits,omitempty"`
	OCIRuntime   string                `json:"oci_runtime,omitempty"`
	Health       any                   `json:"healthconfig,omitempty"`
}

type sgNamespace struct {
	Mode string `json:"nsmode"`
}

// libpod does one call to Podman's own API; out, when not nil, gets the
// JSON answer.
func (e *Engine) libpod(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://d/"+libpodVersion+"/libpod/"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.cli.HTTPClient().Do(req)
	if err != nil {
		return e.wrap("podman "+path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if resp.StatusCode/100 != 2 {
		var ae struct {
			Message string `json:"message"`
		}
		json.Unmarshal(b, &ae)
		if ae.Message == "" {
			ae.Message = strings.TrimSpace(string(b))
		}
		return &libpodError{Status: resp.StatusCode, Msg: ae.Message}
	}
	if out != nil && len(b) > 0 {
		return json.Unmarshal(b, out)
	}
	return nil
}

type libpodError struct {
	Status int
	Msg    string
}

func (e *libpodError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Status, e.Msg) }

// libpodCreate creates s through Podman's SpecGenerator and initialises it.
func (e *Engine) libpodCreate(ctx context.Context, s engine.Spec) (string, error) {
	sg := specGen{
		Name: s.Name, Image: s.Image, Entrypoint: s.Entrypoint, Command: s.Cmd,
		User: s.User, WorkDir: s.Workdir, Hostname: s.Hostname, Labels: s.Labels,
		CapDrop: s.CapDrop, NoNewPrivs: s.NoNewPrivileges, ReadOnly: s.ReadonlyRootfs,
		Mask:  s.MaskedPaths,
		NetNS: sgNamespace{"none"}, IpcNS: sgNamespace{"private"}, CgroupNS: sgNamespace{"private"},
		PidNS: sgNamespace{"private"}, UtsNS: sgNamespace{"private"},
		Init: s.Init, Restart: "no", ImageVolumes: "ignore", OCIRuntime: s.Runtime,
		Annotations: map[string]string{annoSeccomp: s.SeccompJSON},
	}
	if s.Network != "" && s.Network != "none" {
		sg.NetNS = sgNamespace{s.Network}
	}
	if len(s.Env) > 0 {
		sg.Env = map[string]string{}
		for _, kv := range s.Env {
			k, v, _ := strings.Cut(kv, "=")
			sg.Env[k] = v
		}
	}
	if s.SeccompJSON == "unconfined" {
		sg.SeccompPath = "unconfined"
	} else if s.SeccompJSON != "" {
		path, err := seccompFile(s.SeccompJSON)
		if err != nil {
			return "", fmt.Errorf("podman create %s: writing the seccomp profile for Podman to read: %w", s.Name, err)
		}
		sg.SeccompPath = path
	}
	for path, opts := range e.tmpfsOptions(s.Tmpfs) {
		sg.Mounts = append(sg.Mounts, specs.Mount{Destination: path, Type: "tmpfs", Source: "tmpfs", Options: strings.Split(opts, ",")})
	}
	slices.SortFunc(sg.Mounts, func(a, b specs.Mount) int { return strings.Compare(a.Destination, b.Destination) })
	for _, m := range s.Mounts {
		mode := "rw"
		if m.ReadOnly {
			mode = "ro"
		}
		// "bind", not "rbind": no mounts beneath the source come along.
		sg.Mounts = append(sg.Mounts, specs.Mount{Destination: m.Target, Type: "bind", Source: m.Source, Options: []string{"bind", mode}})
	}
	if s.Memory > 0 || s.NanoCPUs > 0 || s.PidsLimit > 0 {
		r := &specs.LinuxResources{}
		if s.Memory > 0 {
			m := s.Memory
			r.Memory = &specs.LinuxMemory{Limit: &m, Swap: &m}
		}
		if s.NanoCPUs > 0 {
			period := uint64(100000)
			quota := s.NanoCPUs * int64(period) / 1e9
			r.CPU = &specs.LinuxCPU{Quota: &quota, Period: &period}
		}
		if s.PidsLimit > 0 {
			r.Pids = &specs.LinuxPids{Limit: ptr(s.PidsLimit)}
		}
		sg.Resources = r
	}
	if hc := healthConfig(s.Health); hc != nil {
		sg.Health = hc
	}
	var created struct {
		ID string `json:"Id"`
	}
	if err := e.libpod(ctx, http.MethodPost, "containers/create", sg, &created); err != nil {
		var le *libpodError
		if asLibpod(err, &le) && le.Status == http.StatusNotFound {
			return "", fmt.Errorf("image %q not found on %s: build it with `runner image build --engine podman` (the default image) or `podman build` (see images/README.md)", s.Image, e.Describe())
		}
		return "", fmt.Errorf("podman create %s: %w", s.Name, err)
	}
	// The runtime's spec exists only once the container is initialised.
	if err := e.libpod(ctx, http.MethodPost, "containers/"+created.ID+"/init", nil, nil); err != nil {
		// Nothing is left behind a failed create: the caller never sees
		// this container, so it is removed here, even after a Ctrl-C.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if rerr := e.cli.ContainerRemove(rctx, created.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); rerr != nil && !errdefs.IsNotFound(rerr) {
			return created.ID, fmt.Errorf("podman init %s: %w; removing the uninitialised container failed too: %v (remove it with `podman rm -f %s`)", s.Name, err, rerr, created.ID)
		}
		return "", fmt.Errorf("podman init %s: %w", s.Name, err)
	}
	return created.ID, nil
}

func ptr[T any](v T) *T { return &v }

func asLibpod(err error, le **libpodError) bool {
	e, ok := err.(*libpodError)
	if ok {
		*le = e
	}
	return ok
}

// libpodInspect is the part of libpod's inspect the read-back needs.
type libpodInspect struct {
	StaticDir  string `json:"StaticDir"`
	OCIRuntime string `json:"OCIRuntime"`
}

// podmanReadBack replaces o's security settings with what the OCI runtime
// is given: the config.json Podman wrote for it.
func (e *Engine) podmanReadBack(ctx context.Context, id string, o *engine.Observed) error {
	var li libpodInspect
	if err := e.libpod(ctx, http.MethodGet, "containers/"+id+"/json", nil, &li); err != nil {
		return fmt.Errorf("podman inspect %s: %w", id, err)
	}
	if li.StaticDir == "" {
		return fmt.Errorf("podman inspect %s: no static directory, so no runtime spec to read back", id)
	}
	path := filepath.Join(li.StaticDir, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("podman read-back of %s: the runtime's spec %s: %w (runner must run on Podman's host, as Podman's user or root)", id, path, err)
	}
	var sp specs.Spec
	if err := json.Unmarshal(b, &sp); err != nil {
		return fmt.Errorf("podman read-back of %s: %s: %w", id, path, err)
	}
	o.Runtime = li.OCIRuntime
	netnsDir := ""
	if sp.Linux != nil && slices.ContainsFunc(sp.Linux.Namespaces, func(ns specs.LinuxNamespace) bool {
		return ns.Type == specs.NetworkNamespace && ns.Path != ""
	}) {
		// Asked only then: Podman's info takes about a second.
		pi, err := e.podmanInfo(ctx)
		if err != nil {
			return fmt.Errorf("podman read-back of %s: %w", id, err)
		}
		netnsDir = pi.netnsDir()
	}
	observeOCI(o, &sp, filepath.Dir(li.StaticDir), netnsDir)
	return nil
}

// podmanOwnBinds are the files Podman bind-mounts into every container
// from the container's own directory (userdata).
var podmanOwnBinds = []string{"/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/dev/shm", "/run/.containerenv"}

// podmanKernelMounts are the kernel filesystems Podman gives every
// container, with their options. The same mount with other options (a rw
// sysfs, a suid /dev) is reported as a mount, which Check refuses.
var podmanKernelMounts = []specs.Mount{
	{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
	{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "noexec", "strictatime", "mode=755", "size=65536k"}},
	{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
	{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
	{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
	{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
}

// bindOptions are the options a plain bind may have: not recursive, not
// shared, no suid, no dev.
var bindOptions = []string{"bind", "ro", "rw", "rprivate", "private", "nosuid", "noexec", "nodev"}

// observeOCI takes the security settings from the runtime's spec. ctrDir
// is the container's directory (…/<id>); Podman's own files bound from
// under it are not runner's mounts. netnsDir is where Podman keeps the
// network namespaces it makes ("" when none is expected): a namespace
// path anywhere else is another's (the host's /proc/1/ns/net).
func observeOCI(o *engine.Observed, sp *specs.Spec, ctrDir, netnsDir string) {
	if sp.Process == nil || sp.Linux == nil || sp.Root == nil {
		o.Privileged = true // nothing to prove anything with
		return
	}
	p, l := sp.Process, sp.Linux
	o.User = ocispec.User(p)
	o.NoNewPrivileges = p.NoNewPrivileges
	o.ReadonlyRootfs = sp.Root.Readonly
	o.CapAdd, o.CapDrop = nil, nil
	if c := p.Capabilities; c == nil {
		o.CapDrop = []string{"ALL"} // Podman leaves the section empty for none
	} else {
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
	// Settings Observed has no field for: only their harmless values pass.
	// An SELinux label must keep the container type (spc_t is unconfined);
	// AppArmor may be absent (rootless Podman sets none) but not disabled.
	if p.Terminal || ocispec.Hooks(sp) || p.ApparmorProfile == "unconfined" ||
		p.SelinuxLabel != "" && !strings.Contains(p.SelinuxLabel, ":container_t:") ||
		l.MountLabel != "" && !strings.Contains(l.MountLabel, ":container_file_t:") ||
		l.RootfsPropagation != "" && l.RootfsPropagation != "private" && l.RootfsPropagation != "rprivate" ||
		l.IntelRdt != nil || l.Personality != nil {
		o.Privileged = true
	}
	for k, v := range l.Sysctl {
		// Podman's one default (containers.conf default_sysctls): ICMP
		// echo sockets for gid 0 only, in the container's own network
		// namespace. Any other sysctl is refused.
		if k != "net.ipv4.ping_group_range" || v != "0 0" {
			o.Privileged = true
		}
	}
	o.SeccompProfile = ocispec.Seccomp(sp)
	o.MaskedPaths, o.ReadonlyPaths = l.MaskedPaths, l.ReadonlyPaths

	// Devices: no node beyond the minimal ones, no allow rule beyond
	// theirs. Rootless Podman writes no device cgroup (it cannot set one;
	// the user namespace keeps host devices out), so none is not counted.
	o.Memory, o.MemorySwap, o.NanoCPUs, o.PidsLimit = 0, 0, 0, 0
	o.Devices = ocispec.ExtraDevices(l.Devices, ocispec.MinimalDevices)
	if r := l.Resources; r != nil {
		if m := r.Memory; m != nil && m.Limit != nil {
			o.Memory = *m.Limit
			if m.Swap != nil {
				o.MemorySwap = *m.Swap
			}
		}
		if c := r.CPU; c != nil && c.Quota != nil && c.Period != nil && *c.Period > 0 {
			o.NanoCPUs = *c.Quota * 1e9 / int64(*c.Period)
		}
		if r.Pids != nil && r.Pids.Limit != nil {
			o.PidsLimit = *r.Pids.Limit
		}
		o.Devices += ocispec.ExtraDeviceRules(r.Devices, ocispec.MinimalDeviceRules()[1:], false)
	}

	// A namespace missing from the spec is the one runc runs in: Podman's
	// (rootless: its user namespace, so the user namespace is never
	// listed; container uid 0 is the Podman user). One with a path is
	// another's, except a network namespace Podman made itself.
	has := map[specs.LinuxNamespaceType]string{}
	for _, ns := range l.Namespaces {
		has[ns.Type] = "private"
		if ns.Path != "" {
			has[ns.Type] = "ns:" + ns.Path
			if ns.Type == specs.NetworkNamespace && netnsDir != "" && filepath.Dir(filepath.Clean(ns.Path)) == netnsDir {
				has[ns.Type] = "private"
			}
		}
	}
	mode := func(t specs.LinuxNamespaceType) string {
		if m, ok := has[t]; ok {
			return m
		}
		return "host"
	}
	o.PidMode, o.IpcMode, o.UTSMode, o.CgroupnsMode = mode(specs.PIDNamespace), mode(specs.IPCNamespace), mode(specs.UTSNamespace), mode(specs.CgroupNamespace)
	if m := mode(specs.NetworkNamespace); m != "private" {
		o.NetworkMode = m // "host" or "ns:PATH"; private keeps inspect's network name
	}
	if mode(specs.MountNamespace) != "private" {
		o.Privileged = true
	}
	if m, ok := has[specs.UserNamespace]; ok {
		o.UsernsMode = m
		if m == "private" && (!ocispec.SafeIDMap(l.UIDMappings) || !ocispec.SafeIDMap(l.GIDMappings)) {
			o.UsernsMode = "host" // a mapping onto host id 0
		}
	}

	o.Tmpfs, o.Mounts = nil, nil
	kernel := slices.Clone(podmanKernelMounts)
	for _, m := range sp.Mounts {
		if i := slices.IndexFunc(kernel, func(k specs.Mount) bool { return sameMount(k, m) }); i >= 0 {
			kernel = slices.Delete(kernel, i, i+1) // each once: a second /proc is reported
			continue
		}
		bind := ocispec.IsBind(m)
		switch {
		case m.Type == "tmpfs" && !bind:
			if o.Tmpfs == nil {
				o.Tmpfs = map[string]string{}
			}
			var kept []string
			for _, opt := range m.Options {
				if opt != "rprivate" && opt != "tmpcopyup" {
					kept = append(kept, opt)
				}
			}
			o.Tmpfs[m.Destination] = strings.Join(kept, ",")
		case m.Type == "bind" && slices.Contains(m.Options, "bind") && !slices.ContainsFunc(m.Options, func(opt string) bool { return !slices.Contains(bindOptions, opt) }):
			if slices.Contains(podmanOwnBinds, m.Destination) && strings.Contains(m.Source, "/"+filepath.Base(ctrDir)+"/userdata/") {
				continue
			}
			o.Mounts = append(o.Mounts, engine.Mount{Source: m.Source, Target: m.Destination, ReadOnly: slices.Contains(m.Options, "ro")})
		default:
			// An rbind, a shared or suid bind, another filesystem.
			o.Mounts = append(o.Mounts, ocispec.Other(m))
		}
	}
}

// sameMount: m is k, its options in any order, perhaps with rprivate.
func sameMount(k, m specs.Mount) bool {
	opts := slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return o == "rprivate" })
	a, b := slices.Clone(k.Options), opts
	slices.Sort(a)
	slices.Sort(b)
	return k.Destination == m.Destination && k.Type == m.Type && k.Source == m.Source && slices.Equal(a, b)
}
