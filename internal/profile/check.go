package profile

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/uids"
)

// Violation is one way a created container differs from its Spec or from the
// hardening every container must have.
type Violation struct {
	Setting string // e.g. "ReadonlyRootfs", "Tmpfs[/tmp]", "Labels[runner.run]"
	Want    string
	Got     string
	// Limit is "memory", "cpus" or "pids" when the violation is that the
	// engine does not enforce that resource limit (it reports none), which
	// the operator may accept in the config (run.accept_unenforced); else "".
	// A limit the engine reports with a different value is not "unenforced":
	// Limit is "" and the violation is never acceptable.
	Limit string
}

// String renders v as "Setting: want W, got G".
func (v Violation) String() string {
	return fmt.Sprintf("%s: want %s, got %s", v.Setting, v.Want, v.Got)
}

// Check compares what the engine reports for a created container against the
// spec and returns every difference, in a fixed order. Fail closed: apply
// refuses to start the container if any violation remains (unenforced limits
// the operator explicitly accepted aside).
//
// Settings that invariant 2 fixes for every container (capabilities,
// no-new-privileges, seccomp, read-only root, privileged, namespaces, devices,
// engine sockets, a non-root user, limits present) are checked against those
// absolute requirements, not against want, so a faulty want cannot weaken them.
func Check(want engine.Spec, got engine.Observed) []Violation {
	var vs []Violation
	add := func(setting, w, g string) {
		vs = append(vs, Violation{Setting: setting, Want: w, Got: g})
	}

	// Identity.
	if n := strings.TrimPrefix(got.Name, "/"); n != want.Name {
		add("Name", q(want.Name), q(n))
	}
	if got.Image != want.Image {
		add("Image", q(want.Image), q(got.Image))
	}
	for _, k := range []string{engine.LabelRun, engine.LabelAgent, engine.LabelConfigHash} {
		w, wok := want.Labels[k]
		g, gok := got.Labels[k]
		if !wok || w == "" || !gok || g != w {
			add("Labels["+k+"]", q(w), labelGot(g, gok))
		}
	}

	if w := want.Labels[engine.LabelUser]; w != "" && got.Labels[engine.LabelUser] != w {
		g, ok := got.Labels[engine.LabelUser]
		add("Labels["+engine.LabelUser+"]", q(w), labelGot(g, ok))
	}

	// The shim must be PID 1 and run exactly the configured argv.
	if !slices.Equal(got.Entrypoint, want.Entrypoint) {
		add("Entrypoint", argv(want.Entrypoint), argv(got.Entrypoint))
	}
	if !slices.Equal(got.Cmd, want.Cmd) {
		add("Cmd", argv(want.Cmd), argv(got.Cmd))
	}

	// Invariant 1: never uid 0.
	if uid, _, ok := uids.ParseUser(got.User); !ok || uid == 0 {
		add("User", "a non-root numeric uid:gid ("+q(want.User)+")", q(got.User))
	} else if got.User != want.User {
		add("User", q(want.User), q(got.User))
	}

	// Capabilities: all dropped, none added.
	if !slices.ContainsFunc(got.CapDrop, isAll) {
		add("CapDrop", "[ALL]", list(got.CapDrop))
	}
	if len(got.CapAdd) > 0 {
		add("CapAdd", "[]", list(got.CapAdd))
	}
	if !got.NoNewPrivileges {
		add("NoNewPrivileges", "true", "false")
	}
	if got.Privileged {
		add("Privileged", "false", "true")
	}

	// Seccomp: exactly our profile.
	if w, ok := seccompWant(want.SeccompJSON); !ok {
		add("SeccompProfile", w, seccompGot(got.SeccompProfile, ""))
	} else if g := seccompGot(got.SeccompProfile, want.SeccompJSON); g != "" {
		add("SeccompProfile", w, g)
	}

	// Filesystem.
	if !got.ReadonlyRootfs {
		add("ReadonlyRootfs", "true", "false")
	}
	for _, p := range unionKeys(want.Tmpfs, got.Tmpfs) {
		w, wok := want.Tmpfs[p]
		g, gok := got.Tmpfs[p]
		if wok != gok || !sameOptions(w, g) {
			add("Tmpfs["+p+"]", present(w, wok), present(g, gok))
		}
	}
	if got.Devices != 0 {
		add("Devices", "0", strconv.Itoa(got.Devices))
	}
	vs = append(vs, checkMounts(want.Mounts, got.Mounts)...)
	vs = append(vs, checkEgress(want, got.Mounts)...)
	vs = append(vs, checkHealth(want.Health, got.Health)...)
	vs = append(vs, checkPaths("MaskedPaths", MaskedPaths, want.MaskedPaths, got.MaskedPaths)...)
	vs = append(vs, checkPaths("ReadonlyPaths", ReadonlyPaths, want.ReadonlyPaths, got.ReadonlyPaths)...)

	// Limits. A limit the engine reports as absent (<= 0) is "unenforced".
	limit := func(setting, name string, w, g int64) {
		switch {
		case w <= 0:
			// Build never produces this; refuse rather than run unlimited.
			add(setting, "a positive limit (spec has "+strconv.FormatInt(w, 10)+")", strconv.FormatInt(g, 10))
		case g != w:
			v := Violation{Setting: setting, Want: strconv.FormatInt(w, 10), Got: strconv.FormatInt(g, 10)}
			if g <= 0 {
				v.Limit = name
			}
			vs = append(vs, v)
		}
	}
	limit("Memory", "memory", want.Memory, got.Memory)
	limit("MemorySwap", "memory", want.Memory, got.MemorySwap) // memory+swap = memory: no swap
	limit("NanoCPUs", "cpus", want.NanoCPUs, got.NanoCPUs)
	limit("PidsLimit", "pids", want.PidsLimit, got.PidsLimit)

	// The runtime asked for, exactly: an agent meant for gVisor must never
	// run on the host kernel because the engine fell back to its default.
	if want.Runtime != "" && got.Runtime != want.Runtime {
		add("Runtime", q(want.Runtime), q(got.Runtime))
	}

	// Namespaces: none shared with the host or another container.
	if got.NetworkMode != want.Network {
		add("NetworkMode", q(want.Network), q(got.NetworkMode))
	} else if sharedNS(got.NetworkMode) {
		add("NetworkMode", "a private network namespace", q(got.NetworkMode))
	}
	for _, ns := range []struct{ setting, mode string }{
		{"PidMode", got.PidMode},
		{"IpcMode", got.IpcMode},
		{"UTSMode", got.UTSMode},
		{"UsernsMode", got.UsernsMode},
		{"CgroupnsMode", got.CgroupnsMode},
	} {
		if sharedNS(ns.mode) {
			add(ns.setting, "a private namespace", q(ns.mode))
		}
	}
	return vs
}

func q(s string) string { return strconv.Quote(s) }

func labelGot(g string, ok bool) string {
	if !ok {
		return "no label"
	}
	return q(g)
}

func present(s string, ok bool) string {
	if !ok {
		return "absent"
	}
	return q(s)
}

func argv(a []string) string {
	qs := make([]string, len(a))
	for i, s := range a {
		qs[i] = q(s)
	}
	return "[" + strings.Join(qs, " ") + "]"
}

func list(s []string) string { return "[" + strings.Join(s, " ") + "]" }

// isAll reports whether a CapDrop entry means every capability.
func isAll(c string) bool {
	c = strings.ToUpper(strings.TrimSpace(c))
	return c == "ALL" || c == "CAP_ALL"
}

// sharedNS reports whether a namespace mode joins a namespace runner does not
// own: the host's ("host"), another container's ("container:ID"), or one
// named by path ("ns:/proc/1/ns/pid", Podman). "", "private", "none" and
// IPC's "shareable" (private, but others may join it) are private.
func sharedNS(mode string) bool {
	m := strings.ToLower(strings.TrimSpace(mode))
	return m == "host" || strings.HasPrefix(m, "container:") || strings.HasPrefix(m, "ns:")
}

// sameOptions compares mount option strings as multisets ("a,b" == "b,a").
func sameOptions(a, b string) bool {
	as, bs := strings.Split(a, ","), strings.Split(b, ",")
	slices.Sort(as)
	slices.Sort(bs)
	return slices.Equal(as, bs)
}

func unionKeys(a, b map[string]string) []string {
	var ks []string
	for k := range a {
		ks = append(ks, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			ks = append(ks, k)
		}
	}
	slices.Sort(ks)
	return ks
}

// canonicalJSON re-encodes a JSON document with sorted keys and no
// insignificant whitespace, so two encodings of one profile compare equal.
func canonicalJSON(s string) (string, bool) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return "", false
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", false
	}
	return strings.TrimSuffix(b.String(), "\n"), true
}

func fingerprint(canonical string) string {
	sum := sha256.Sum256([]byte(canonical))
	return "sha256:" + hex.EncodeToString(sum[:8])
}

// seccompWant describes the wanted profile; ok is false if want is not a
// usable profile (then Check always reports a violation).
func seccompWant(want string) (string, bool) {
	w, ok := canonicalJSON(want)
	if !ok || !strings.HasPrefix(w, "{") || w == "{}" {
		return "runner's profile (spec has none)", false
	}
	return "runner's profile (" + fingerprint(w) + ")", true
}

// seccompGot returns "" if got is the wanted profile, else what got is.
func seccompGot(got, want string) string {
	w, wok := canonicalJSON(want)
	wok = wok && want != ""
	switch strings.TrimSpace(got) {
	case "":
		return "no profile"
	case "unconfined":
		return "unconfined"
	}
	g, ok := canonicalJSON(got)
	switch {
	case !ok:
		return "an unparsable profile"
	case wok && g == w:
		return ""
	default:
		return "a different profile (" + fingerprint(g) + ")"
	}
}

func formatMount(m engine.Mount) string {
	mode := "rw"
	if m.ReadOnly {
		mode = "ro"
	}
	return fmt.Sprintf("%s:%s:%s", m.Source, m.Target, mode)
}

// checkMounts requires exactly the wanted bind mounts (as a set, keyed by
// target) and no engine socket, whether wanted or not.
func checkMounts(want, got []engine.Mount) []Violation {
	byTarget := func(ms []engine.Mount) map[string][]string {
		out := map[string][]string{}
		for _, m := range ms {
			out[m.Target] = append(out[m.Target], formatMount(m))
		}
		for _, v := range out {
			slices.Sort(v)
		}
		return out
	}
	w, g := byTarget(want), byTarget(got)
	targets := make([]string, 0, len(w)+len(g))
	for t := range w {
		targets = append(targets, t)
	}
	for t := range g {
		if _, ok := w[t]; !ok {
			targets = append(targets, t)
		}
	}
	slices.Sort(targets)

	var vs []Violation
	for _, t := range targets {
		if !slices.Equal(w[t], g[t]) {
			vs = append(vs, Violation{Setting: "Mounts[" + t + "]", Want: mountList(w[t]), Got: mountList(g[t])})
		}
	}
	for _, m := range got {
		if exposesEngineSocket(m.Source) {
			vs = append(vs, Violation{Setting: "Mounts[" + m.Target + "]", Want: "no container engine socket or state", Got: formatMount(m)})
		}
	}
	return vs
}

func mountList(ms []string) string {
	if len(ms) == 0 {
		return "absent"
	}
	return strings.Join(ms, " ")
}

// engineSockets are the base names of container engine API sockets.
var engineSockets = []string{"docker.sock", "containerd.sock", "podman.sock", "crio.sock", "buildkitd.sock", "dockershim.sock"}

// engineDirs are host directories that hold (or are ancestors of) an engine
// socket; mounting one exposes the socket. /run/user/<uid> is rootless
// Docker's and Podman's $XDG_RUNTIME_DIR.
var engineDirs = []string{
	"/", "/run", "/var", "/var/run", "/run/user",
	"/run/docker", "/var/run/docker", "/run/containerd", "/var/run/containerd",
	"/run/podman", "/var/run/podman", "/run/crio", "/var/run/crio",
	"/var/lib/docker", "/var/lib/containerd",
}

// exposesEngineSocket reports whether a bind-mount source is, or is a
// directory known to contain, a container engine socket (invariant 2).
func exposesEngineSocket(src string) bool {
	p := path.Clean("/" + src)
	if slices.Contains(engineSockets, path.Base(p)) || slices.Contains(engineDirs, p) {
		return true
	}
	// /run/user/<uid> and /run/user/<uid>/{docker,podman,containerd}
	if rest, ok := strings.CutPrefix(p, "/run/user/"); ok {
		uid, sub, _ := strings.Cut(rest, "/")
		if _, err := strconv.ParseUint(uid, 10, 32); err == nil {
			return sub == "" || sub == "docker" || sub == "podman" || sub == "containerd"
		}
	}
	return false
}
