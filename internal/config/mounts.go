package config

import (
	"fmt"
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

// homeSensitive are the operator's secrets and what runs as them, relative
// to a home directory. They are refused as mount sources, as is anything
// inside them or containing them (~ itself, ~/.config), unless the mount
// says allow_sensitive = true.
var homeSensitive = []forbiddenPath{
	{".ssh", "SSH keys, authorized keys and known hosts"},
	{".gnupg", "GnuPG keys"},
	{".aws", "AWS credentials"},
	{".kube", "Kubernetes credentials"},
	{".azure", "Azure credentials"},
	{".config/gcloud", "Google Cloud credentials"},
	{".config/gh", "GitHub CLI tokens"},
	{".netrc", "passwords for remote hosts"},
	{".git-credentials", "git's stored passwords and tokens"},
	{".gitconfig", "git configuration, which can name commands git runs as you"},
	{".config/git", "git configuration, which can name commands git runs as you"},
	{".password-store", "the pass password store"},
	{".local/share/keyrings", "desktop keyrings"},
	{".vault-token", "a Vault token"},
	{".npmrc", "npm registry tokens"},
	{".pypirc", "PyPI upload tokens"},
	{".cargo/credentials.toml", "crates.io tokens"},
	{".bashrc", "a shell startup file, which runs as you"},
	{".bash_profile", "a shell startup file, which runs as you"},
	{".bash_login", "a shell startup file, which runs as you"},
	{".bash_logout", "a shell startup file, which runs as you"},
	{".profile", "a shell startup file, which runs as you"},
	{".zshrc", "a shell startup file, which runs as you"},
	{".zshenv", "a shell startup file, which runs as you"},
	{".zprofile", "a shell startup file, which runs as you"},
	{".zlogin", "a shell startup file, which runs as you"},
	{".config/fish", "fish's startup files, which run as you"},
	{".bash_history", "shell history, which often holds secrets typed on the command line"},
	{".zsh_history", "shell history, which often holds secrets typed on the command line"},
}

// homes are the home directories whose engine paths and secrets are
// guarded: every user's, and the operator's wherever it is.
func homes() []string {
	list := []string{"/home/*", "/root"}
	if home, err := os.UserHomeDir(); err == nil && filepath.IsAbs(home) {
		list = append(list, filepath.Clean(home))
	}
	return list
}

// sensitiveSources is homeSensitive in every home.
func sensitiveSources() []forbiddenPath {
	var list []forbiddenPath
	for _, home := range homes() {
		for _, f := range homeSensitive {
			list = append(list, forbiddenPath{path.Join(home, f.path), f.why})
		}
	}
	return list
}

// forbiddenSources is the full list for this host: the system paths, the
// engine paths in every home directory, and the sockets the environment
// points engines at.
func forbiddenSources() []forbiddenPath {
	list := append([]forbiddenPath(nil), systemForbidden...)
	for _, home := range homes() {
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

// checkSource reports why the host path p (clean, absolute) is in the list
// (must not be mounted, or needs acknowledging), or "" if it is not.
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
	if rel, _ := conflict(t, forbiddenPath{path: EgressDir}); rel != "" {
		return "Forbidden mount target", fmt.Sprintf("%q overlaps %s, where runner mounts the egress proxy socket. Use another directory.", t, EgressDir)
	}
	return "", ""
}

// mounts evaluates the mount blocks of one agent instance. Sources are only
// made absolute here; CheckSources looks at them on the host.
func (d *decoder) mounts(s scope, ab agentBlock) []Mount {
	var out []Mount
	targets := map[string]hcl.Range{}
	for _, c := range ab.mounts {
		m := Mount{ReadOnly: true} // read-only unless the operator asks: the safe default
		srcAttr, tgtAttr := c.Attributes["source"], c.Attributes["target"]
		src, srcOK := d.str(s, srcAttr, true)
		if srcOK {
			if src == "" || strings.ContainsRune(src, 0) {
				d.fail(s, srcAttr.Expr, "Invalid mount source", `source must be a host directory or file, e.g. "./work" (relative to the directory of %s).`, srcAttr.NameRange.Filename)
				srcOK = false
			} else {
				p := src
				if !filepath.IsAbs(p) {
					p = filepath.Join(d.dir, p)
				}
				m.Source, m.raw = filepath.Clean(p), src
				m.SourceRange, m.srcExpr, m.srcCtx = srcAttr.Expr.Range(), srcAttr.Expr, s.ctx
			}
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
		if v, ok := d.boolean(s, c.Attributes["allow_sensitive"]); ok {
			m.AllowSensitive = v
		}
		if srcOK && tgtOK {
			out = append(out, m)
		}
	}
	return out
}
