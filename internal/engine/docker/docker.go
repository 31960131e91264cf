// Package docker implements engine.Engine with the Docker Engine API. It also
// serves rootless Docker and Podman's Docker-compatible socket: the endpoint
// comes from DOCKER_HOST and the usual Docker environment.
package docker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/runner-dev/runner/internal/engine"
)

// Engine talks to one Docker daemon.
type Engine struct {
	cli    *client.Client
	flavor flavor // Docker, or Podman's compatible API (podman.go)
	// Podman's /info walks its storage (about 0.5 s a call here, twice as
	// long with its own /libpod/info) and apply asks more than once: its
	// answer is kept for podmanInfoTTL (podman.go).
	infoMu   sync.Mutex
	info     engine.Info
	infoTime time.Time
}

var _ engine.Engine = (*Engine)(nil)

// New connects using the Docker environment (DOCKER_HOST, DOCKER_API_VERSION,
// DOCKER_CERT_PATH, DOCKER_TLS_VERIFY), or to host when it is not empty, and
// negotiates the API version, so a 1.41 daemon works with this newer client.
func New(ctx context.Context, host string) (*Engine, error) {
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker: bad client settings: %w (check DOCKER_HOST=%q and DOCKER_CERT_PATH)", err, os.Getenv("DOCKER_HOST"))
	}
	e := &Engine{cli: cli}
	if _, err := cli.Ping(ctx); err != nil {
		cli.Close()
		return nil, e.wrap("connect", err)
	}
	v, err := cli.ServerVersion(ctx)
	if err != nil {
		cli.Close()
		return nil, e.wrap("version", err)
	}
	e.flavor = detectFlavor(v)
	return e, nil
}

// Describe names the daemon endpoint for messages.
func (e *Engine) Describe() string {
	if e.flavor == flavorPodman {
		return "podman at " + e.cli.DaemonHost()
	}
	return "docker at " + e.cli.DaemonHost()
}

// Close releases the client's connections.
func (e *Engine) Close() error { return e.cli.Close() }

// wrap adds what the user should check to errors from the daemon.
func (e *Engine) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	// The client's own text ("Cannot connect ... Is the docker daemon
	// running?") says what this says; it is left out so the advice comes once.
	if client.IsErrConnectionFailed(err) {
		return fmt.Errorf("docker %s: cannot reach the engine at %s%s: is the daemon running? Check with `docker info`, or set DOCKER_HOST to the engine to use",
			op, e.cli.DaemonHost(), dockerHostNote())
	}
	if errors.Is(err, os.ErrNotExist) || strings.Contains(err.Error(), "connect: ") {
		return fmt.Errorf("docker %s: cannot reach the engine at %s%s: %w; check with `docker info`",
			op, e.cli.DaemonHost(), dockerHostNote(), err)
	}
	return fmt.Errorf("docker %s: %w", op, err)
}

// dockerHostNote says where the endpoint came from, when DOCKER_HOST set it.
func dockerHostNote() string {
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		return " (from DOCKER_HOST)"
	}
	return ""
}

// Info reports the security-relevant facts of the daemon.
func (e *Engine) Info(ctx context.Context) (engine.Info, error) {
	if e.flavor == flavorPodman {
		return e.podmanCachedInfo(ctx)
	}
	return e.daemonInfo(ctx)
}

func (e *Engine) daemonInfo(ctx context.Context) (engine.Info, error) {
	in, err := e.cli.Info(ctx)
	if err != nil {
		return engine.Info{}, e.wrap("info", err)
	}
	out := engine.Info{
		Name:          "docker",
		Version:       in.ServerVersion,
		Endpoint:      e.cli.DaemonHost(),
		CgroupVersion: in.CgroupVersion,
		CgroupDriver:  in.CgroupDriver,
		MemoryLimit:   in.MemoryLimit,
		PidsLimit:     in.PidsLimit,
		CPULimit:      in.CPUCfsQuota && in.CPUCfsPeriod,
		// "runc" and also its legacy containerd names
		// (io.containerd.runc.v2): what a container may ask for by name.
		Runtimes:       slices.Sorted(maps.Keys(in.Runtimes)),
		DefaultRuntime: in.DefaultRuntime,
	}
	if out.CgroupVersion == "" {
		out.CgroupVersion = "1"
	}
	for _, opt := range in.SecurityOptions {
		// Entries look like "name=seccomp,profile=default".
		for _, kv := range strings.Split(opt, ",") {
			switch kv {
			case "name=rootless":
				out.Rootless = true
			case "name=userns":
				out.UserNS = true
			case "name=seccomp":
				out.Seccomp = true
			}
		}
	}
	if out.UserNS {
		out.RemapRoot = remapRoot(in.DockerRootDir)
	}
	// Rootless without a cgroup manager cannot apply limits even when the
	// kernel has the controllers, whatever MemoryLimit says.
	if out.CgroupDriver == "none" {
		out.MemoryLimit, out.PidsLimit, out.CPULimit = false, false, false
	}
	if e.flavor == flavorPodman {
		pi, err := e.podmanInfo(ctx)
		if err != nil {
			return engine.Info{}, err
		}
		podmanFacts(&out, pi)
	}
	return out, nil
}

// remapRoot is the "UID.GID" a remapped daemon's data root ends in
// (/var/lib/docker/100000.100000): the host ids container root maps to.
func remapRoot(dataRoot string) string {
	base := dataRoot[strings.LastIndex(dataRoot, "/")+1:]
	u, g, ok := strings.Cut(base, ".")
	if !ok || u == "" || g == "" || strings.Trim(u+g, "0123456789") != "" {
		return ""
	}
	return base
}

// List returns the containers of one run, sorted by agent name.
func (e *Engine) List(ctx context.Context, run string) ([]engine.Container, error) {
	sel := engine.LabelRun + "=" + run
	if run == "" {
		sel = engine.LabelRun // every run's
	}
	f := filters.NewArgs(filters.Arg("label", sel))
	list, err := e.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return nil, e.wrap("list containers", err)
	}
	out := make([]engine.Container, 0, len(list))
	for _, c := range list {
		name := ""
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		out = append(out, engine.Container{
			ID:         c.ID,
			Name:       name,
			Run:        c.Labels[engine.LabelRun],
			Agent:      c.Labels[engine.LabelAgent],
			ConfigHash: c.Labels[engine.LabelConfigHash],
			Image:      c.Image,
			State:      c.State,
			Health:     listHealth(c.Status),
			Created:    time.Unix(c.Created, 0),
			Labels:     c.Labels,
			Mounts:     listMounts(c.Mounts),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Agent < out[j].Agent })
	return out, nil
}

// Image looks ref up in the local image store.
func (e *Engine) Image(ctx context.Context, ref string) (engine.Image, bool, error) {
	in, err := e.cli.ImageInspect(ctx, ref)
	if errdefs.IsNotFound(err) {
		return engine.Image{}, false, nil
	}
	if err != nil {
		return engine.Image{}, false, e.wrap("inspect image "+ref, err)
	}
	img := engine.Image{ID: in.ID}
	if in.Config != nil {
		img.Labels = in.Config.Labels
	}
	return img, true, nil
}

// Create translates the spec into Docker's create options.
func (e *Engine) Create(ctx context.Context, s engine.Spec) (string, error) {
	cfg := &container.Config{
		Image:      s.Image,
		Entrypoint: s.Entrypoint,
		Cmd:        s.Cmd,
		Env:        s.Env,
		User:       s.User,
		WorkingDir: s.Workdir,
		Hostname:   s.Hostname,
		Labels:     s.Labels,
		// No TTY: tmux owns the terminal inside; stdout is init's log.
		Healthcheck: healthConfig(s.Health),
	}
	if e.flavor == flavorPodman {
		return e.libpodCreate(ctx, s) // libpod.go: what the compatible create cannot say
	}
	seccomp := s.SeccompJSON
	sec := []string{"no-new-privileges:true", "seccomp=" + seccomp}
	if !s.NoNewPrivileges {
		sec = sec[1:]
	}
	pids := s.PidsLimit
	host := &container.HostConfig{
		NetworkMode:    container.NetworkMode(s.Network),
		Runtime:        s.Runtime, // "" is the daemon's default
		CapDrop:        s.CapDrop,
		SecurityOpt:    sec,
		ReadonlyRootfs: s.ReadonlyRootfs,
		Tmpfs:          e.tmpfsOptions(s.Tmpfs),
		Privileged:     false,
		IpcMode:        container.IPCModePrivate,
		MaskedPaths:    s.MaskedPaths,
		ReadonlyPaths:  s.ReadonlyPaths,
		// On cgroup v1 the default is the host's cgroup namespace.
		CgroupnsMode:  container.CgroupnsModePrivate,
		Init:          &s.Init,
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
		Resources: container.Resources{
			Memory:     s.Memory,
			MemorySwap: s.Memory, // equal to Memory: no swap
			NanoCPUs:   s.NanoCPUs,
			PidsLimit:  &pids,
		},
	}
	for _, m := range s.Mounts {
		host.Mounts = append(host.Mounts, mount.Mount{
			Type:     mount.TypeBind,
			Source:   m.Source,
			Target:   m.Target,
			ReadOnly: m.ReadOnly,
			// Don't pull in mounts beneath the source (e.g. a docker
			// socket mounted somewhere under a workspace).
			BindOptions: &mount.BindOptions{NonRecursive: true},
		})
	}
	resp, err := e.cli.ContainerCreate(ctx, cfg, host, nil, nil, s.Name)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return "", fmt.Errorf("image %q not found on %s: build it with `runner image build` (the default image) or `docker build` (see images/README.md)", s.Image, e.Describe())
		}
		return "", e.wrap("create "+s.Name, err)
	}
	return resp.ID, nil
}

// Inspect reads a container back in engine-neutral terms.
func (e *Engine) Inspect(ctx context.Context, id string) (engine.Observed, error) {
	c, err := e.cli.ContainerInspect(ctx, id)
	if err != nil {
		return engine.Observed{}, e.wrap("inspect "+id, err)
	}
	o := observe(c)
	if e.flavor == flavorPodman {
		// The security settings as the OCI runtime gets them (libpod.go).
		if err := e.podmanReadBack(ctx, id, &o); err != nil {
			return engine.Observed{}, err
		}
	}
	return o, nil
}

// observe is separate from Inspect so the translation is unit-testable.
func observe(c container.InspectResponse) engine.Observed {
	o := engine.Observed{ID: c.ID, Name: strings.TrimPrefix(c.Name, "/")}
	if c.Config != nil {
		o.Image = c.Config.Image
		o.User = c.Config.User
		o.Labels = c.Config.Labels
		o.Env = c.Config.Env
		o.Entrypoint = c.Config.Entrypoint
		o.Cmd = c.Config.Cmd
	}
	if c.State != nil {
		o.State = c.State.Status
		o.ExitCode = c.State.ExitCode
		o.StartedAt, _ = time.Parse(time.RFC3339Nano, c.State.StartedAt)
	}
	if h := c.HostConfig; h != nil {
		o.CapAdd = h.CapAdd
		o.CapDrop = h.CapDrop
		for _, opt := range h.SecurityOpt {
			k, v, _ := strings.Cut(opt, "=")
			if !strings.Contains(opt, "=") {
				k, v, _ = strings.Cut(opt, ":")
			}
			switch k {
			case "no-new-privileges":
				o.NoNewPrivileges = v == "" || v == "true"
			case "seccomp":
				o.SeccompProfile = v
			}
		}
		o.ReadonlyRootfs = h.ReadonlyRootfs
		o.Tmpfs = h.Tmpfs
		o.Memory = h.Memory
		o.MemorySwap = h.MemorySwap
		o.NanoCPUs = h.NanoCPUs
		if h.PidsLimit != nil {
			o.PidsLimit = *h.PidsLimit
		}
		o.NetworkMode = string(h.NetworkMode)
		o.Runtime = h.Runtime
		o.Privileged = h.Privileged
		o.PidMode = string(h.PidMode)
		o.IpcMode = string(h.IpcMode)
		o.UTSMode = string(h.UTSMode)
		o.UsernsMode = string(h.UsernsMode)
		o.CgroupnsMode = string(h.CgroupnsMode)
		o.Devices = len(h.Devices) + len(h.DeviceRequests) + len(h.DeviceCgroupRules)
		o.MaskedPaths = h.MaskedPaths
		o.ReadonlyPaths = h.ReadonlyPaths
		// Old-style binds ("/a:/b") would not show in Mounts as typed
		// mounts; count them as mounts so Check sees them.
		for _, b := range h.Binds {
			parts := strings.Split(b, ":")
			m := engine.Mount{Source: parts[0]}
			if len(parts) > 1 {
				m.Target = parts[1]
			}
			// "/a:/b:ro,rprivate,rbind" (Podman lists every bind mount
			// this way): read-only only when the options say ro.
			if len(parts) > 2 {
				m.ReadOnly = slices.Contains(strings.Split(parts[2], ","), "ro")
			}
			o.Mounts = append(o.Mounts, m)
		}
	}
	for _, m := range c.Mounts {
		if m.Type == mount.TypeTmpfs {
			continue // compared through HostConfig.Tmpfs
		}
		if containsTarget(o.Mounts, m.Destination) {
			continue
		}
		o.Mounts = append(o.Mounts, engine.Mount{Source: m.Source, Target: m.Destination, ReadOnly: !m.RW})
	}
	observeHealth(&o, c)
	return o
}

func containsTarget(ms []engine.Mount, target string) bool {
	for _, m := range ms {
		if m.Target == target {
			return true
		}
	}
	return false
}

// Start starts a created container.
func (e *Engine) Start(ctx context.Context, id string) error {
	return e.wrap("start "+id, e.cli.ContainerStart(ctx, id, container.StartOptions{}))
}

// Remove stops and removes a container; one that is already gone is fine.
func (e *Engine) Remove(ctx context.Context, id string) error {
	timeout := 5
	err := e.cli.ContainerStop(ctx, id, container.StopOptions{Timeout: &timeout})
	if err != nil && !errdefs.IsNotFound(err) {
		return e.wrap("stop "+id, err)
	}
	err = e.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !errdefs.IsNotFound(err) {
		return e.wrap("remove "+id, err)
	}
	return nil
}

// Exec runs argv in the container (no shell) and collects its output.
func (e *Engine) Exec(ctx context.Context, id, user string, argv []string) (engine.ExecResult, error) {
	created, err := e.cli.ContainerExecCreate(ctx, id, container.ExecOptions{
		User: user, Cmd: argv, AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		return engine.ExecResult{}, e.wrap("exec in "+id, err)
	}
	att, err := e.cli.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return engine.ExecResult{}, e.wrap("exec attach in "+id, err)
	}
	defer att.Close()
	stdout, stderr := &capped{max: engine.MaxExecOutput}, &capped{max: engine.MaxExecOutput}
	if _, err := stdcopy.StdCopy(stdout, stderr, att.Reader); err != nil {
		return engine.ExecResult{}, e.wrap("exec read in "+id, err)
	}
	ins, err := e.cli.ContainerExecInspect(ctx, created.ID)
	if err != nil {
		return engine.ExecResult{}, e.wrap("exec inspect in "+id, err)
	}
	return engine.ExecResult{Stdout: stdout.b.String(), Stderr: stderr.b.String(), ExitCode: ins.ExitCode, Truncated: stdout.over || stderr.over}, nil
}

// capped keeps the first max bytes written to it and drops the rest.
type capped struct {
	b    bytes.Buffer
	max  int
	over bool
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.b.Len(); len(p) > room {
		c.b.Write(p[:max(room, 0)])
		c.over = true
		return len(p), nil
	}
	return c.b.Write(p)
}

// ExecTTY starts an interactive exec on a TTY.
func (e *Engine) ExecTTY(ctx context.Context, id string, argv, env []string, withStdin bool, rows, cols uint) (engine.TTY, error) {
	created, err := e.cli.ContainerExecCreate(ctx, id, container.ExecOptions{
		Cmd: argv, Env: env, Tty: true, AttachStdin: withStdin, AttachStdout: true, AttachStderr: true,
		ConsoleSize: &[2]uint{rows, cols},
	})
	if err != nil {
		return nil, e.wrap("exec in "+id, err)
	}
	att, err := e.cli.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{Tty: true, ConsoleSize: &[2]uint{rows, cols}})
	if err != nil {
		return nil, e.wrap("exec attach in "+id, err)
	}
	return &tty{e: e, id: created.ID, att: att, stdin: withStdin}, nil
}

type tty struct {
	e     *Engine
	id    string
	att   types.HijackedResponse
	stdin bool
}

func (t *tty) Read(p []byte) (int, error) { return t.att.Reader.Read(p) }

// Write refuses when the exec has no stdin: a read-only session must not be
// able to type, even by mistake in the caller.
func (t *tty) Write(p []byte) (int, error) {
	if !t.stdin {
		return 0, errors.New("this terminal session is read-only")
	}
	return t.att.Conn.Write(p)
}

func (t *tty) Close() error { t.att.Close(); return nil }

func (t *tty) Resize(ctx context.Context, rows, cols uint) error {
	return t.e.cli.ContainerExecResize(ctx, t.id, container.ResizeOptions{Height: rows, Width: cols})
}

func (t *tty) Wait(ctx context.Context) (int, error) {
	for {
		ins, err := t.e.cli.ContainerExecInspect(ctx, t.id)
		if err != nil {
			return 0, t.e.wrap("exec inspect", err)
		}
		if !ins.Running {
			return ins.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ExecStream starts argv without a TTY and streams its standard output.
// Standard input is attached but never written: closing the stream closes
// the connection, and the daemon then closes the program's standard input.
func (e *Engine) ExecStream(ctx context.Context, id string, argv []string) (engine.Stream, error) {
	created, err := e.cli.ContainerExecCreate(ctx, id, container.ExecOptions{
		Cmd: argv, AttachStdin: true, AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		return nil, e.wrap("exec in "+id, err)
	}
	att, err := e.cli.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return nil, e.wrap("exec attach in "+id, err)
	}
	pr, pw := io.Pipe()
	s := &stream{e: e, id: created.ID, att: att, out: pr, stderr: &engine.TailBuffer{Max: 4 << 10}}
	go func() {
		// The daemon multiplexes stdout and stderr on one connection.
		_, err := stdcopy.StdCopy(pw, s.stderr, att.Reader)
		pw.CloseWithError(err)
	}()
	return s, nil
}

type stream struct {
	e      *Engine
	id     string
	att    types.HijackedResponse
	out    *io.PipeReader
	stderr *engine.TailBuffer
	once   sync.Once
}

func (s *stream) Read(p []byte) (int, error) { return s.out.Read(p) }

func (s *stream) Close() error {
	s.once.Do(func() {
		s.att.Close()
		s.out.Close()
	})
	return nil
}

func (s *stream) Wait(ctx context.Context) (int, string, error) {
	for {
		ins, err := s.e.cli.ContainerExecInspect(ctx, s.id)
		if err != nil {
			return 0, s.stderr.String(), s.e.wrap("exec inspect", err)
		}
		if !ins.Running {
			return ins.ExitCode, s.stderr.String(), nil
		}
		select {
		case <-ctx.Done():
			return 0, s.stderr.String(), ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Logs returns the last lines the container's init printed.
func (e *Engine) Logs(ctx context.Context, id string, tail int) (string, error) {
	rc, err := e.cli.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: fmt.Sprint(tail)})
	if err != nil {
		return "", e.wrap("logs "+id, err)
	}
	defer rc.Close()
	// A few lines, but a line can be any length: bounded like Exec.
	out := &capped{max: engine.MaxExecOutput}
	if _, err := stdcopy.StdCopy(out, out, rc); err != nil {
		return "", e.wrap("logs "+id, err)
	}
	return out.b.String(), nil
}

// BuildImage runs a classic (non-BuildKit) build from a tar context: it needs
// no registry when the Dockerfile starts FROM scratch.
func (e *Engine) BuildImage(ctx context.Context, tarCtx io.Reader, ref string, labels map[string]string, progress io.Writer) error {
	resp, err := e.cli.ImageBuild(ctx, tarCtx, build.ImageBuildOptions{
		Tags: []string{ref}, Labels: labels, Remove: true, ForceRemove: true, NetworkMode: "none",
	})
	if err != nil {
		return e.wrap("build "+ref, err)
	}
	defer resp.Body.Close()
	// The body is a stream of JSON messages; an error arrives as a message,
	// not as an HTTP status.
	dec := json.NewDecoder(bufio.NewReader(resp.Body))
	for {
		var msg struct {
			Stream string `json:"stream"`
			Error  string `json:"error"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			return nil
		} else if err != nil {
			return e.wrap("build "+ref, err)
		}
		if msg.Error != "" {
			return fmt.Errorf("docker build %s: %s", ref, msg.Error)
		}
		if progress != nil && strings.TrimSpace(msg.Stream) != "" {
			fmt.Fprint(progress, msg.Stream)
		}
	}
}

// SaveImage streams an image as `docker save` does (a tar another engine
// can import: the containerd engine builds with Docker, then imports).
func (e *Engine) SaveImage(ctx context.Context, ref string) (io.ReadCloser, error) {
	rc, err := e.cli.ImageSave(ctx, []string{ref})
	if err != nil {
		return nil, e.wrap("save "+ref, err)
	}
	return rc, nil
}
