package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/runner-dev/runner/internal/state"
)

// forbiddenPath is a host path that must not be mounted, nor anything inside
// it, nor any directory that contains it. Path elements may be globs.
type forbiddenPath struct {
	path string
	why  string
}

// systemForbidden are host paths that hand a container the kernel, the host's
// configuration or the container engine. /run and /var/run cover every engine
// socket (docker.sock, containerd, podman, /run/user/UID/...), so they are not
// listed one by one.
var systemForbidden = []forbiddenPath{
	{"/proc", "the kernel's process and system interface"},
	{"/sys", "the kernel's device and control interface"},
	{"/dev", "host devices"},
	{"/etc", "host configuration and credentials"},
	{"/boot", "the host kernel and boot loader"},
	{"/run", "runtime sockets, including the container engine's"},
	{"/var/run", "runtime sockets, including the container engine's"},
	{"/var/lib/docker", "Docker's images, containers and volumes"},
	{"/var/lib/containerd", "containerd's images and containers"},
	{"/var/lib/containers", "Podman's images and containers"},
	{"/tmp/.X11-unix", "X11 display sockets, which can type into host windows"},
	{"/tmp/tmux-*", "host tmux server sockets, which can run commands on the host"},
	{"/tmp/ssh-*", "SSH agent sockets"},
}

// homeForbidden are engine paths in a user's home directory: rootless engine
// storage, and ~/.docker with registry credentials and Docker Desktop's socket.
var homeForbidden = []forbiddenPath{
	{".docker", "Docker's client config, credentials and Docker Desktop's socket"},
	{".local/share/docker", "rootless Docker's images, containers and volumes"},
	{".local/share/containerd", "rootless containerd's images and containers"},
	{".local/share/containers", "rootless Podman's images and containers"},
}

// forbiddenSources is the full list for this host: the system paths, the
// engine paths in every home directory, and the sockets the environment
// points engines at.
func forbiddenSources() []forbiddenPath {
	list := append([]forbiddenPath(nil), systemForbidden...)
	homes := []string{"/home/*", "/root"}
	if home, err := os.UserHomeDir(); err == nil && filepath.IsAbs(home) {
		homes = append(homes, filepath.Clean(home))
	}
	for _, home := range homes {
		for _, f := range homeForbidden {
			list = append(list, forbiddenPath{path.Join(home, f.path), f.why})
		}
	}
	if root, err := state.Root(); err == nil {
		list = append(list, forbiddenPath{filepath.Clean(root), "runner's state: every agent's relay credential, the message queue and the audit log"})
	}
	if dir := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(dir) {
		list = append(list, forbiddenPath{filepath.Clean(dir), "your session's runtime directory, which holds rootless engine sockets"})
	}
	if sock, ok := strings.CutPrefix(os.Getenv("DOCKER_HOST"), "unix://"); ok && filepath.IsAbs(sock) {
		list = append(list, forbiddenPath{filepath.Clean(sock), "the Docker socket DOCKER_HOST names"})
	}
	if sock := os.Getenv("CONTAINERD_ADDRESS"); filepath.IsAbs(sock) {
		list = append(list, forbiddenPath{filepath.Clean(sock), "the containerd socket CONTAINERD_ADDRESS names"})
	}
	return list
}

// conflict reports how the clean absolute path p relates to a forbidden path:
// "is", "is inside" or "contains", with the concrete path it conflicts with;
// relation is "" when they are unrelated.
func conflict(p string, f forbiddenPath) (relation, with string) {
	ps, fe := elems(p), elems(f.path)
	n := min(len(ps), len(fe))
	for i := range n {
		if ok, _ := path.Match(fe[i], ps[i]); !ok {
			return "", ""
		}
	}
	// Show the forbidden path with its globs filled in from p where they overlap.
	with = "/" + path.Join(append(ps[:n:n], fe[n:]...)...)
	switch {
	case len(ps) == len(fe):
		return "is", with
	case len(ps) > len(fe):
		return "is inside", with
	default:
		return "contains", with
	}
}

func elems(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// checkSource reports why the host path p (clean, absolute) must not be
// mounted, or "" if it may be.
func checkSource(p string, forbidden []forbiddenPath) string {
	for _, f := range forbidden {
		if rel, with := conflict(p, f); rel != "" {
			return fmt.Sprintf("%s %s (%s)", rel, with, f.why)
		}
	}
	return ""
}

// targetForbidden are container paths a mount must not cover: the image's
// system files and kernel interfaces.
var targetForbidden = []string{"/proc", "/sys", "/dev", "/etc", "/usr", "/bin", "/sbin", "/lib*"}

// checkTarget reports why a mount target is unusable, or "" if it is fine.
func checkTarget(t string) (summary, detail string) {
	switch {
	case t == "" || strings.ContainsRune(t, 0):
		return "Invalid mount target", "target must be an absolute path in the container, e.g. \"/workspace\"."
	case !path.IsAbs(t):
		return "Relative mount target", fmt.Sprintf("target %q must be an absolute path in the container, e.g. \"/workspace\".", t)
	case path.Clean(t) != t:
		return "Mount target not clean", fmt.Sprintf("Write target %q as %q.", t, path.Clean(t))
	case t == "/":
		return "Forbidden mount target", "A mount cannot replace the container's root directory. Use a directory such as \"/workspace\"."
	case t == "/tmp" || t == HomeDir:
		return "Forbidden mount target", fmt.Sprintf("runner mounts its own bounded tmpfs at %s. Mount below it (e.g. %s/project) or elsewhere.", t, t)
	}
	for _, f := range targetForbidden {
		if rel, with := conflict(t, forbiddenPath{path: f}); rel == "is" || rel == "is inside" {
			return "Forbidden mount target", fmt.Sprintf("%q %s %s, the container's system files; a mount there could replace them. Use a directory such as \"/workspace\".", t, rel, with)
		}
	}
	if rel, _ := conflict(t, forbiddenPath{path: RelayDir}); rel != "" {
		return "Forbidden mount target", fmt.Sprintf("%q overlaps %s, where runner mounts the relay socket. Use another directory.", t, RelayDir)
	}
	return "", ""
}

// mounts evaluates the mount blocks of one agent instance.
func (d *decoder) mounts(s scope, ab agentBlock) []Mount {
	var out []Mount
	targets := map[string]hcl.Range{}
	for _, c := range ab.mounts {
		m := Mount{ReadOnly: true} // read-only unless the operator asks: the safe default
		srcAttr, tgtAttr := c.Attributes["source"], c.Attributes["target"]
		src, srcOK := d.str(s, srcAttr, true)
		if srcOK {
			m.Source, srcOK = d.source(s, srcAttr, src)
		}
		tgt, tgtOK := d.str(s, tgtAttr, true)
		if tgtOK {
			if summary, detail := checkTarget(tgt); summary != "" {
				d.fail(s, tgtAttr.Expr, summary, "%s", detail)
				tgtOK = false
			} else if prev, dup := targets[tgt]; dup {
				d.fail(s, tgtAttr.Expr, "Duplicate mount target",
					"Another mount of this agent already uses target %q (%s). Give each mount its own target.", tgt, at(prev))
				tgtOK = false
			} else {
				targets[tgt] = tgtAttr.Expr.Range()
				m.Target = tgt
			}
		}
		if v, ok := d.boolean(s, c.Attributes["read_only"]); ok {
			m.ReadOnly = v
		}
		if srcOK && tgtOK {
			out = append(out, m)
		}
	}
	return out
}

// source resolves a mount source against the config directory, follows
// symlinks, and checks both the written and the resolved path, so a link to
// the engine socket is caught. It returns the resolved path: that is what was
// checked, and what the engine must mount.
func (d *decoder) source(s scope, attr *hcl.Attribute, raw string) (string, bool) {
	bad := func(summary, detail string, args ...any) (string, bool) {
		d.fail(s, attr.Expr, summary, detail, args...)
		return "", false
	}
	if raw == "" || strings.ContainsRune(raw, 0) {
		return bad("Invalid mount source", `source must be a host directory or file, e.g. "./work" (relative to the directory of %s).`, attr.NameRange.Filename)
	}
	p := raw
	if !filepath.IsAbs(p) {
		p = filepath.Join(d.dir, p)
	}
	p = filepath.Clean(p)
	if why := checkSource(p, d.forbidden); why != "" {
		return bad("Forbidden mount source", "%q %s. Mounting it would let the agent reach outside its container; mount a project directory instead.", raw, why)
	}
	resolved, err := filepath.EvalSymlinks(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return bad("Mount source does not exist", "%q is %s, which does not exist. Create it, or fix the path (a relative source is relative to the directory of %s).", raw, p, attr.NameRange.Filename)
	case err != nil:
		return bad("Cannot read mount source", "%q: %s.", raw, err)
	}
	if why := checkSource(resolved, d.forbidden); why != "" {
		return bad("Forbidden mount source", "%q resolves to %s, which %s. Mounting it would let the agent reach outside its container; mount a project directory instead.", raw, resolved, why)
	}
	fi, err := os.Stat(resolved)
	switch {
	case err != nil:
		return bad("Cannot read mount source", "%q: %s.", raw, err)
	case fi.Mode()&fs.ModeSocket != 0:
		return bad("Mount source is a socket", "%q is the unix socket %s. A socket lets the agent talk to a host service (an engine socket gives full control of the host), so sockets are never mounted. Mount a directory or a regular file instead.", raw, resolved)
	case !fi.IsDir() && !fi.Mode().IsRegular():
		return bad("Mount source is not a file or directory", "%q is %s, a %s. Only directories and regular files can be mounted.", raw, resolved, fileKind(fi.Mode()))
	}
	return resolved, true
}

func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeDevice != 0:
		return "device"
	default:
		return "special file"
	}
}
