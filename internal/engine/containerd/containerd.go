// Package containerd implements engine.Engine with the containerd Go client,
// against a system containerd (Debian's 1.6 on these machines) in a
// namespace of runner's own. Every container gets a user namespace of its
// run (userns.go), a root filesystem that is a snapshot of the image with
// its owners shifted into that namespace (containerd 1.6 cannot idmap
// mounts; the shifted snapshot is made once per image and mapping and then
// reused), and an OCI spec built field by field from runner's Spec
// (spec.go). There is no CNI: network "none" is a new network namespace
// with only lo, and "bridge" is refused.
package containerd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	containers "github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/state"
	"github.com/runner-dev/runner/internal/uids"
)

// Fixed choices.
const (
	// Namespace is containerd's namespace for runner's containers and images.
	Namespace = "runner"
	// DefaultAddress is the system containerd's socket.
	DefaultAddress = "/run/containerd/containerd.sock"
	snapshotter    = "overlayfs"
	runtimeName    = "io.containerd.runc.v2"
	// cgroupParent holds every runner container's cgroup (cgroupfs on v1).
	cgroupParent = "/runner"
)

// Engine talks to one containerd.
type Engine struct {
	cli     *client.Client
	address string
	logDir  string
	// remapMu serialises making a shifted snapshot: two creates of one run
	// at once would both try to make it.
	remapMu sync.Mutex
}

var _ engine.Engine = (*Engine)(nil)

// New connects to containerd at address, or CONTAINERD_ADDRESS, or
// DefaultAddress, and checks that it answers.
func New(ctx context.Context, address string) (*Engine, error) {
	if address == "" {
		address = os.Getenv("CONTAINERD_ADDRESS")
	}
	if address == "" {
		address = DefaultAddress
	}
	address = strings.TrimPrefix(address, "unix://")
	root, err := state.Root()
	if err != nil {
		return nil, err
	}
	e := &Engine{address: address, logDir: filepath.Join(root, "containerd-logs")}
	if _, err := os.Stat(address); err != nil {
		return nil, e.wrap("connect", err)
	}
	cli, err := client.New(address, client.WithDefaultNamespace(Namespace), client.WithTimeout(10*time.Second))
	if err != nil {
		return nil, e.wrap("connect", err)
	}
	e.cli = cli
	if _, err := cli.Version(ctx); err != nil {
		cli.Close()
		return nil, e.wrap("connect", err)
	}
	return e, nil
}

// Describe names the daemon endpoint for messages.
func (e *Engine) Describe() string { return "containerd at unix://" + e.address }

// Close releases the client's connection.
func (e *Engine) Close() error {
	if e.cli == nil {
		return nil
	}
	return e.cli.Close()
}

// wrap adds what to check to errors from containerd.
func (e *Engine) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, os.ErrNotExist) || errdefs.IsUnavailable(err) || strings.Contains(err.Error(), "connect: ") {
		return fmt.Errorf("containerd %s: cannot reach containerd at %s: %v; is it running? Start one (as root: `scripts/containerd.sh`, or `containerd &`), check with `ctr --address %s version`, or set CONTAINERD_ADDRESS",
			op, e.address, err, e.address)
	}
	return fmt.Errorf("containerd %s: %w", op, err)
}

// Info reports the daemon's facts. Limits come from the host's cgroup
// controllers: the daemon runs as root, so it can use every one mounted.
func (e *Engine) Info(ctx context.Context) (engine.Info, error) {
	v, err := e.cli.Version(ctx)
	if err != nil {
		return engine.Info{}, e.wrap("version", err)
	}
	out := engine.Info{
		Name: "containerd", Version: v.Version, Endpoint: "unix://" + e.address,
		UserNS: true, Seccomp: true, Snapshotter: snapshotter,
		// runc only: gVisor (runsc) is offered on the Docker engine.
		Runtimes: []string{"runc"}, DefaultRuntime: "runc",
		CgroupVersion: "1", CgroupDriver: "cgroupfs",
	}
	has := func(p string) bool { _, err := os.Stat(p); return err == nil }
	if has("/sys/fs/cgroup/cgroup.controllers") {
		out.CgroupVersion = "2"
		b, _ := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
		cs := strings.Fields(string(b))
		in := func(c string) bool { return sliceHas(cs, c) }
		out.MemoryLimit, out.PidsLimit, out.CPULimit = in("memory"), in("pids"), in("cpu")
	} else {
		out.MemoryLimit = has("/sys/fs/cgroup/memory/memory.limit_in_bytes")
		out.PidsLimit = has("/sys/fs/cgroup/pids")
		out.CPULimit = has("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") || has("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us")
	}
	return out, nil
}

func sliceHas(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Image looks ref up in runner's namespace.
func (e *Engine) Image(ctx context.Context, ref string) (engine.Image, bool, error) {
	img, err := e.cli.GetImage(ctx, ref)
	if errdefs.IsNotFound(err) {
		return engine.Image{}, false, nil
	}
	if err != nil {
		return engine.Image{}, false, e.wrap("image "+ref, err)
	}
	sp, err := img.Spec(ctx)
	if err != nil {
		return engine.Image{}, false, e.wrap("image config of "+ref, err)
	}
	return engine.Image{ID: img.Target().Digest.String(), Labels: sp.Config.Labels}, true, nil
}

// Create makes the container and its task (runc create: namespaces,
// mounts, user, capabilities, no-new-privileges and seccomp are in place,
// and the process waits before the agent's program runs), so that Inspect
// can read back what the kernel applied before Start lets it run.
func (e *Engine) Create(ctx context.Context, s engine.Spec) (string, error) {
	img, err := e.cli.GetImage(ctx, s.Image)
	if errdefs.IsNotFound(err) {
		return "", fmt.Errorf("image %q not found on %s: put it there with `runner image build` in a directory whose runner.hcl says engine = \"containerd\" (it builds with Docker and imports), or `ctr -n %s images import` (see images/README.md)", s.Image, e.Describe(), Namespace)
	}
	if err != nil {
		return "", e.wrap("image "+s.Image, err)
	}
	if ok, err := img.IsUnpacked(ctx, snapshotter); err != nil {
		return "", e.wrap("image "+s.Image, err)
	} else if !ok {
		if err := img.Unpack(ctx, snapshotter); err != nil {
			return "", e.wrap("unpack "+s.Image, err)
		}
	}
	icfg, err := img.Spec(ctx)
	if err != nil {
		return "", e.wrap("image config of "+s.Image, err)
	}
	run := s.Labels[engine.LabelRun]
	ns, unlock, err := e.allocate(ctx, run)
	if err != nil {
		return "", err
	}
	// Held until the container recording the slot exists, not longer:
	// the task's creation (runc) of one agent need not wait for another's.
	unlock = sync.OnceFunc(unlock)
	defer unlock()
	sp, err := buildSpec(s, ImageConfig{Env: icfg.Config.Env}, ns, cgroupParent)
	if err != nil {
		return "", err
	}
	labels := map[string]string{}
	for k, v := range s.Labels {
		labels[k] = v
	}
	labels[labelUserNS] = formatSlot(ns)
	labels[labelName] = s.Name
	// Names are runner's and unique (as Docker's are); the ID is random,
	// so a replaced container is a new one to everything keyed by ID (the
	// relay's brief ids, transcripts), and a long name fits.
	if taken, err := e.cli.Containers(ctx, fmt.Sprintf("labels.%q==%s", labelName, s.Name)); err != nil {
		return "", e.wrap("create "+s.Name, err)
	} else if len(taken) > 0 {
		return "", fmt.Errorf("containerd create %s: a container of that name exists (%s; remove it with `runner destroy`, or `ctr -n %s containers rm %s`)", s.Name, taken[0].ID(), Namespace, taken[0].ID())
	}
	id := newID()
	newContainer := func() (client.Container, error) {
		return e.cli.NewContainer(ctx, id,
			client.WithSnapshotter(snapshotter),
			client.WithUserNSRemappedSnapshot(id, img, sp.Linux.UIDMappings, sp.Linux.GIDMappings),
			client.WithSpec(sp),
			client.WithContainerLabels(labels),
			client.WithRuntime(runtimeName, nil),
		)
	}
	e.remapMu.Lock()
	c, err := newContainer()
	if errdefs.IsAlreadyExists(err) && e.removeStaleRemaps(ctx) {
		// A shifted snapshot half made by a runner that died; the lock
		// held means no other runner is making one now.
		c, err = newContainer()
	}
	e.remapMu.Unlock()
	unlock()
	if err != nil {
		return "", e.wrap("create "+s.Name, err)
	}
	if err := os.MkdirAll(e.logDir, 0o700); err != nil {
		e.Remove(ctx, id)
		return "", err
	}
	if _, err := c.NewTask(ctx, cio.LogFile(e.logPath(id))); err != nil {
		e.Remove(ctx, id)
		return "", e.wrap("create the task of "+s.Name, err)
	}
	return id, nil
}

// removeStaleRemaps removes snapshots being shifted ("…-remap", active)
// and reports whether there were any.
func (e *Engine) removeStaleRemaps(ctx context.Context) bool {
	sn := e.cli.SnapshotService(snapshotter)
	var stale []string
	sn.Walk(ctx, func(_ context.Context, i snapshots.Info) error {
		if i.Kind == snapshots.KindActive && strings.HasSuffix(i.Name, "-remap") {
			stale = append(stale, i.Name)
		}
		return nil
	})
	for _, k := range stale {
		sn.Remove(ctx, k)
	}
	return len(stale) > 0
}

// labelName is the container's name (runner-RUN-AGENT).
const labelName = "runner.name"

// newID is a container ID as Docker's look: 64 hex digits.
func newID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (e *Engine) logPath(id string) string { return filepath.Join(e.logDir, id+".log") }

// Inspect reads the container, its spec, its task and the task's init
// process back.
func (e *Engine) Inspect(ctx context.Context, id string) (engine.Observed, error) {
	r, err := e.record(ctx, id, true)
	if err != nil {
		return engine.Observed{}, err
	}
	o := observe(r)
	if o.Health != nil {
		o.HealthStatus = e.health(ctx, id, o)
	}
	return o, nil
}

func (e *Engine) record(ctx context.Context, id string, proc bool) (record, error) {
	c, err := e.cli.LoadContainer(ctx, id)
	if err != nil {
		return record{}, e.wrap("inspect "+id, err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return record{}, e.wrap("inspect "+id, err)
	}
	return e.recordOf(ctx, c, info, proc)
}

func (e *Engine) recordOf(ctx context.Context, c client.Container, info containers.Container, proc bool) (record, error) {
	r := record{ID: info.ID, Image: info.Image, Labels: info.Labels, Runtime: info.Runtime.Name}
	sp, err := c.Spec(ctx)
	if err == nil {
		r.Spec = sp
	}
	if t, ok := info.Labels[labelStarted]; ok {
		r.Started, _ = time.Parse(time.RFC3339Nano, t)
	}
	task, err := c.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return r, nil
	}
	if err != nil {
		return record{}, e.wrap("task of "+info.ID, err)
	}
	st, err := task.Status(ctx)
	if err != nil {
		return record{}, e.wrap("task status of "+info.ID, err)
	}
	r.State, r.ExitCode = string(st.Status), int(st.ExitStatus)
	if proc && (st.Status == client.Created || st.Status == client.Running) {
		ps, err := readProc(task.Pid())
		if err != nil {
			return record{}, fmt.Errorf("containerd inspect %s: reading its init process (pid %d) from /proc: %w", info.ID, task.Pid(), err)
		}
		r.Proc = ps
	}
	return r, nil
}

// readProc reads a process's status and id maps from the host's /proc.
func readProc(pid uint32) (*procState, error) {
	dir := fmt.Sprintf("/proc/%d", pid)
	b, err := os.ReadFile(dir + "/status")
	if err != nil {
		return nil, err
	}
	ps, err := parseProcStatus(string(b))
	if err != nil {
		return nil, err
	}
	for _, m := range []struct {
		file string
		dst  *[]uids.Extent
	}{{"uid_map", &ps.UIDMap}, {"gid_map", &ps.GIDMap}} {
		b, err := os.ReadFile(dir + "/" + m.file)
		if err != nil {
			return nil, err
		}
		if *m.dst, err = uids.ParseIDMap(string(b)); err != nil {
			return nil, err
		}
	}
	return ps, nil
}

// health runs the container's check once, now: containerd has none of its
// own, so the verdict is taken when asked (Inspect), not on a timer.
func (e *Engine) health(ctx context.Context, id string, o engine.Observed) string {
	if o.State != "running" {
		return ""
	}
	h := o.Health
	if !o.StartedAt.IsZero() && time.Since(o.StartedAt) < h.StartPeriod {
		return "starting"
	}
	tctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	res, err := e.Exec(tctx, id, o.User, h.Test)
	if err != nil || res.ExitCode != 0 {
		return "unhealthy"
	}
	return "healthy"
}

// List returns the containers of one run (every run's when run is "").
func (e *Engine) List(ctx context.Context, run string) ([]engine.Container, error) {
	filter := fmt.Sprintf("labels.%q", engine.LabelRun)
	if run != "" {
		filter = fmt.Sprintf("labels.%q==%s", engine.LabelRun, run)
	}
	cs, err := e.cli.Containers(ctx, filter)
	if err != nil {
		return nil, e.wrap("list containers", err)
	}
	out := make([]engine.Container, 0, len(cs))
	for _, c := range cs {
		info, err := c.Info(ctx)
		if errdefs.IsNotFound(err) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, e.wrap("list containers", err)
		}
		r, err := e.recordOf(ctx, c, info, false)
		if err != nil {
			return nil, err
		}
		o := observe(r)
		out = append(out, engine.Container{
			ID: info.ID, Name: info.Labels[labelName], Run: info.Labels[engine.LabelRun], Agent: info.Labels[engine.LabelAgent],
			ConfigHash: info.Labels[engine.LabelConfigHash], Image: info.Image, State: o.State,
			Created: info.CreatedAt, Labels: info.Labels, Mounts: o.Mounts,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Agent < out[j].Agent })
	return out, nil
}

// Start lets the created task run the agent's program.
func (e *Engine) Start(ctx context.Context, id string) error {
	c, err := e.cli.LoadContainer(ctx, id)
	if err != nil {
		return e.wrap("start "+id, err)
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		return e.wrap("start "+id+" (its task)", err)
	}
	if _, err := c.SetLabels(ctx, map[string]string{labelStarted: time.Now().UTC().Format(time.RFC3339Nano)}); err != nil {
		return e.wrap("start "+id, err)
	}
	return e.wrap("start "+id, task.Start(ctx))
}

// Remove stops the task (SIGTERM, SIGKILL after 5 s), deletes it, the
// container, its snapshot and its log; a missing one is not an error.
func (e *Engine) Remove(ctx context.Context, id string) error {
	c, err := e.cli.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return e.wrap("remove "+id, err)
	}
	if task, err := c.Task(ctx, nil); err == nil {
		if err := stopTask(ctx, task); err != nil {
			return e.wrap("stop "+id, err)
		}
		if _, err := task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return e.wrap("remove the task of "+id, err)
		}
	} else if !errdefs.IsNotFound(err) {
		return e.wrap("remove "+id, err)
	}
	if err := c.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return e.wrap("remove "+id, err)
	}
	os.Remove(e.logPath(id))
	return nil
}

func stopTask(ctx context.Context, task client.Task) error {
	st, err := task.Status(ctx)
	if err != nil || st.Status == client.Stopped || st.Status == client.Created {
		return nil // a created task has run nothing yet: Delete kills it
	}
	wait, err := task.Wait(ctx)
	if err != nil {
		return err
	}
	if err := task.Kill(ctx, syscall.SIGTERM); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	select {
	case <-wait:
		return nil
	case <-time.After(5 * time.Second):
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := task.Kill(ctx, syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	select {
	case <-wait:
	case <-time.After(10 * time.Second):
	}
	return nil
}

// Logs returns the last tail lines the container's init printed (its
// stdout and stderr, which the shim writes to a file of runner's: containerd
// keeps no logs).
func (e *Engine) Logs(ctx context.Context, id string, tail int) (string, error) {
	f, err := os.Open(e.logPath(id))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("containerd logs %s: %w", id, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	// A few lines, but a line can be any length: bounded like Exec.
	off := max(fi.Size()-engine.MaxExecOutput, 0)
	b := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil && err != io.EOF {
		return "", err
	}
	s := string(b)
	if tail > 0 {
		lines := strings.SplitAfter(s, "\n")
		if lines[len(lines)-1] == "" {
			lines = lines[:len(lines)-1]
		}
		if len(lines) > tail {
			lines = lines[len(lines)-tail:]
		}
		s = strings.Join(lines, "")
	}
	return s, nil
}

// containerSpec loads a container's stored spec (for exec's process).
func (e *Engine) task(ctx context.Context, id string) (client.Task, *specs.Spec, error) {
	c, err := e.cli.LoadContainer(ctx, id)
	if err != nil {
		return nil, nil, e.wrap("exec in "+id, err)
	}
	sp, err := c.Spec(ctx)
	if err != nil {
		return nil, nil, e.wrap("exec in "+id, err)
	}
	t, err := c.Task(ctx, nil)
	if err != nil {
		return nil, nil, e.wrap("exec in "+id+" (is it running?)", err)
	}
	return t, sp, nil
}
