package docker

// The capability layer: Podman's Docker-compatible API answers most calls as
// Docker does, and where it does not this file translates. Everything else
// in the package is Docker's behaviour. Which engine answers is detected on
// connect (the version's components), never assumed from the endpoint.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/api/types"

	"github.com/runner-dev/runner/internal/engine"
)

// flavor is which engine answers the Docker API.
type flavor int

const (
	flavorDocker flavor = iota
	flavorPodman
)

// detectFlavor: Podman names itself in the version's components
// ("Podman Engine"); Docker says "Engine".
func detectFlavor(v types.Version) flavor {
	for _, c := range v.Components {
		if strings.HasPrefix(c.Name, "Podman") {
			return flavorPodman
		}
	}
	return flavorDocker
}

// IsPodman reports whether the endpoint is Podman's API.
func (e *Engine) IsPodman() bool { return e.flavor == flavorPodman }

// PodmanHost is the rootless Podman socket of this user: CONTAINER_HOST
// when set (Podman's own variable), else $XDG_RUNTIME_DIR/podman/podman.sock.
func PodmanHost() string {
	if h := os.Getenv("CONTAINER_HOST"); h != "" {
		return h
	}
	dir := os.Getenv("XDG_RUNTIME_DIR")
	if dir == "" {
		dir = fmt.Sprintf("/run/user/%d", os.Getuid())
	}
	return "unix://" + filepath.Join(dir, "podman", "podman.sock")
}

// podmanInfo is the part of Podman's own /libpod/info that the compatible
// /info leaves out or gets wrong: whether it is rootless (the compatible
// SecurityOptions never say), and the cgroup setup.
type podmanInfo struct {
	Host struct {
		CgroupManager string `json:"cgroupManager"`
		CgroupVersion string `json:"cgroupVersion"` // "v1" or "v2"
		Security      struct {
			Rootless bool `json:"rootless"`
		} `json:"security"`
		OCIRuntime struct {
			Name string `json:"name"`
		} `json:"ociRuntime"`
	} `json:"host"`
	Store struct {
		RunRoot string `json:"runRoot"`
	} `json:"store"`
}

// netnsDir is where Podman makes network namespaces: rootless under its
// runtime directory (the run root's parent, $XDG_RUNTIME_DIR), rootful in
// /run/netns; "" when the run root is unknown, so no path is Podman's.
func (pi podmanInfo) netnsDir() string {
	if !pi.Host.Security.Rootless {
		return "/run/netns"
	}
	if !filepath.IsAbs(pi.Store.RunRoot) {
		return ""
	}
	return filepath.Join(filepath.Dir(filepath.Clean(pi.Store.RunRoot)), "netns")
}

func (e *Engine) podmanInfo(ctx context.Context) (podmanInfo, error) {
	var pi podmanInfo
	// The client's HTTP client dials the daemon's socket; the host part
	// of the URL is ignored for unix sockets.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://d/v4.0.0/libpod/info", nil)
	if err != nil {
		return pi, err
	}
	resp, err := e.cli.HTTPClient().Do(req)
	if err != nil {
		return pi, e.wrap("podman info", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return pi, fmt.Errorf("podman info: HTTP %d from %s", resp.StatusCode, e.cli.DaemonHost())
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&pi); err != nil {
		return pi, fmt.Errorf("podman info: %w", err)
	}
	return pi, nil
}

// podmanInfoTTL is how long a Podman Engine keeps its Info: the facts in
// it (rootless, cgroups, runtimes) change only when the service restarts.
const podmanInfoTTL = 10 * time.Second

func (e *Engine) podmanCachedInfo(ctx context.Context) (engine.Info, error) {
	e.infoMu.Lock()
	defer e.infoMu.Unlock()
	if !e.infoTime.IsZero() && time.Since(e.infoTime) < podmanInfoTTL {
		return e.info, nil
	}
	in, err := e.daemonInfo(ctx)
	if err != nil {
		return in, err
	}
	e.info, e.infoTime = in, time.Now()
	return in, nil
}

// podmanFacts corrects Info for Podman: rootless from its own info; on
// cgroup v1 a rootless Podman ignores every resource limit (it only warns),
// whatever the compatible /info says, so they are reported as not
// enforceable and apply requires accept_unenforced for each. Its runtimes
// list names every runtime Podman knows of, installed or not: only the one
// it uses is offered.
func podmanFacts(out *engine.Info, pi podmanInfo) {
	out.Name = "podman"
	out.Rootless = pi.Host.Security.Rootless
	out.CgroupVersion = strings.TrimPrefix(pi.Host.CgroupVersion, "v")
	out.CgroupDriver = pi.Host.CgroupManager
	if out.Rootless && out.CgroupVersion == "1" {
		out.MemoryLimit, out.PidsLimit, out.CPULimit = false, false, false
	}
	rt := pi.Host.OCIRuntime.Name
	if rt == "" {
		rt = out.DefaultRuntime
	}
	out.Runtimes, out.DefaultRuntime = nil, rt
	if rt != "" {
		out.Runtimes = []string{rt}
	}
}

// seccompFile writes the profile where Podman can read it and returns the
// path: Podman takes `seccomp=` as a file path where Docker takes the JSON
// itself. Files are named by the profile's hash in a directory of ours that
// no one else may write, so no one can swap the profile Podman reads
// (the read-back compares the runtime's compiled filter: libpod.go). The service runs as this user (rootless), on this
// machine: a remote Podman cannot read it, and create then fails.
func seccompFile(profile string) (string, error) {
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("runner-seccomp-%d", os.Getuid()))
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return "", err
	}
	if err := ownDir(dir); err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(profile))
	path := filepath.Join(dir, "sha256-"+hex.EncodeToString(sum[:])+".json")
	if got, err := os.ReadFile(path); err == nil && string(got) == profile {
		return path, nil
	}
	tmp, err := os.CreateTemp(dir, ".profile-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(profile); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	return path, os.Rename(tmp.Name(), path)
}

// ownDir refuses a profile directory that is not ours or that others may
// write: someone could swap the file Podman reads.
func ownDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Getuid() || fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s is not a directory of this user that only it can write; remove it", dir)
	}
	return nil
}

// tmpfsOptions: Podman refuses tmpfs uid= and gid= ("unknown mount option")
// and takes "U" (owned by the container's user) instead, which the
// runtime's spec then has as uid= and gid= of that user. Docker gets the options as they are.
func (e *Engine) tmpfsOptions(t map[string]string) map[string]string {
	if e.flavor != flavorPodman {
		return t
	}
	out := make(map[string]string, len(t))
	for path, opts := range t {
		var kept []string
		owner := false
		for _, o := range strings.Split(opts, ",") {
			if strings.HasPrefix(o, "uid=") || strings.HasPrefix(o, "gid=") {
				owner = true
				continue
			}
			kept = append(kept, o)
		}
		if owner {
			kept = append(kept, "U")
		}
		out[path] = strings.Join(kept, ",")
	}
	return out
}
