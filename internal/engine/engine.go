// Package engine is the small interface every container engine implements.
// The runner never talks to an engine except through it, so plan/apply logic
// is shared and the conformance tests in enginetest run against each engine.
package engine

import (
	"context"
	"io"
	"time"

	"github.com/runner-dev/runner/internal/uids"
)

// Labels every runner container carries. The engine is the source of truth:
// plan reads these back instead of keeping a local state file.
const (
	LabelRun        = "runner.run"
	LabelAgent      = "runner.agent"
	LabelConfigHash = "runner.config-hash"
	// LabelUser is the container's "uid:gid", so the uids in use can be
	// listed without inspecting every container (internal/uids).
	LabelUser = "runner.user"
	// LabelMountSources records what each mount's source resolved to on
	// the host when the container was created (see plan.EncodeSources), so
	// plan can say which one resolves differently now.
	LabelMountSources = "runner.mount-sources"
	// LabelAgentConfig records the agent's settings the container was
	// created from (plan.EncodeView), so plan shows attribute-level
	// changes against what is deployed. Sensitive values are not in it.
	LabelAgentConfig = "runner.agent-config"
)

// Engine is what plan/apply/destroy need from a container engine.
type Engine interface {
	// Info describes the engine's security-relevant capabilities.
	Info(ctx context.Context) (Info, error)
	// List returns every container labelled with runner.run=run, or,
	// when run is "", every runner container of every run.
	List(ctx context.Context, run string) ([]Container, error)
	// Image looks up ref in the local image store; found is false when it is
	// not there (not an error: no registry is assumed).
	Image(ctx context.Context, ref string) (img Image, found bool, err error)
	// Create creates (but does not start) a container and returns its ID.
	Create(ctx context.Context, spec Spec) (string, error)
	// Inspect reads a container back, in engine-neutral terms, for the
	// fail-closed profile check.
	Inspect(ctx context.Context, id string) (Observed, error)
	Start(ctx context.Context, id string) error
	// Remove stops (if needed) and removes a container; a missing one is not an error.
	Remove(ctx context.Context, id string) error
	// Exec runs argv in the container as user and returns its stdout, stderr
	// and exit code.
	Exec(ctx context.Context, id, user string, argv []string) (ExecResult, error)
	// ExecTTY starts argv in the container on a new TTY of the given size.
	// Input is forwarded only when withStdin is true.
	ExecTTY(ctx context.Context, id string, argv, env []string, withStdin bool, rows, cols uint) (TTY, error)
	// ExecStream starts argv in the container without a TTY, as the
	// container's user, and streams its standard output byte for byte. Its
	// standard input is a pipe that stays open, and empty, until the
	// stream is closed, so the program can end when its reader goes away.
	ExecStream(ctx context.Context, id string, argv []string) (Stream, error)
	// ExecAttached runs an operator's command in the container (runner
	// exec) with its streams connected, until it ends, and returns its
	// exit status.
	ExecAttached(ctx context.Context, id string, o ExecOptions) (int, error)
	// Logs returns the container's last tail lines of stdout/stderr.
	Logs(ctx context.Context, id string, tail int) (string, error)
	// BuildImage builds an image from a tar build context (with a Dockerfile at
	// its root), tagging it ref; progress lines go to progress.
	BuildImage(ctx context.Context, contextTar io.Reader, ref string, labels map[string]string, progress io.Writer) error
	// Describe says which engine this is and where, for error messages.
	Describe() string
	Close() error
}

// RunUserNS is implemented by an engine that gives every run a user
// namespace of its own (containerd): container ids map to host ids by
// run, not by daemon. Runner asks it where an agent's uid lands on the
// host, to check that no host account has it and to give the agent its
// bind-mounted files (credentials, relay and egress sockets).
type RunUserNS interface {
	// RunMapping is the mapping run's containers have, or the one its
	// next container will get.
	RunMapping(ctx context.Context, run string) (uids.Mapping, error)
}

// Info is what `runner doctor` reports and apply checks before creating.
type Info struct {
	Name     string // "docker"
	Version  string
	Endpoint string // e.g. unix:///var/run/docker.sock
	Rootless bool   // daemon runs as a non-root user
	UserNS   bool   // user namespace remapping is on
	// RemapRoot is the host "uid.gid" container root maps to under
	// userns-remap ("" otherwise).
	RemapRoot string
	Seccomp   bool // seccomp supported and enabled
	// Snapshotter is the containerd snapshotter root filesystems come
	// from ("" for Docker, whose storage driver is its own business).
	Snapshotter   string
	CgroupVersion string // "1" or "2"
	CgroupDriver  string
	// Which limits the engine can enforce.
	MemoryLimit bool
	PidsLimit   bool
	CPULimit    bool
	// Runtimes are the OCI runtimes the engine offers (e.g. "runc",
	// "runsc"), sorted; DefaultRuntime is the one it uses when a
	// container names none.
	Runtimes       []string
	DefaultRuntime string
}

// Image is a local image.
type Image struct {
	ID     string
	Labels map[string]string
}

// Container is one runner container as the engine reports it.
type Container struct {
	ID         string
	Name       string
	Run        string
	Agent      string
	ConfigHash string
	Image      string
	State      string // running, exited, created, ...
	Health     string // "healthy", "unhealthy", "starting", or "" (no check, or not running)
	Created    time.Time
	Labels     map[string]string
	// Mounts are its bind mounts as the engine lists them (ReadOnly false
	// when writable): mount-source checks treat every writable one as a
	// place its agent can plant links.
	Mounts []Mount
}

// Spec is everything needed to create one hardened agent container. It is
// built by the profile package from a config.Agent; engines translate it.
type Spec struct {
	Name       string // container name, e.g. runner-demo-alice
	Image      string
	Entrypoint []string
	Cmd        []string
	Env        []string // KEY=VALUE
	User       string   // uid:gid
	Workdir    string
	Hostname   string
	Labels     map[string]string

	CapDrop         []string // always ["ALL"]
	NoNewPrivileges bool
	SeccompJSON     string // the profile itself, inline
	ReadonlyRootfs  bool
	Tmpfs           map[string]string // path -> mount options (size=...,mode=...)
	Memory          int64             // bytes (and memory+swap = same: no swap)
	NanoCPUs        int64
	PidsLimit       int64
	Network         string // "none" or "bridge"
	// Runtime is the OCI runtime ("runsc" for gVisor); "" is the engine's
	// default. omitempty keeps the config hash of containers made before
	// the field existed.
	Runtime string `json:",omitempty"`
	Mounts  []Mount
	Init    bool // never use the engine's init: runner-agent is PID 1
	Health  *Health
	// MaskedPaths are hidden in the container (/dev/null over a file, an
	// empty read-only tmpfs over a directory); ReadonlyPaths are mounted
	// read-only. Both replace the engine's defaults, so they include them.
	MaskedPaths   []string
	ReadonlyPaths []string
}

// Health is the engine's health check of a container: Test (an argv, run
// in the container without a shell) every Interval, failing after Timeout;
// Retries failures in a row make the container unhealthy, except during
// StartPeriod after it started.
type Health struct {
	Test        []string
	Interval    time.Duration
	Timeout     time.Duration
	StartPeriod time.Duration
	Retries     int
}

// Mount is a bind mount.
type Mount struct {
	Source   string
	Target   string
	ReadOnly bool
}

// Observed is a created container read back from the engine, in the same
// terms as Spec, plus the settings that must be off.
type Observed struct {
	ID              string
	Name            string
	Image           string
	User            string
	Labels          map[string]string
	CapAdd          []string
	CapDrop         []string
	NoNewPrivileges bool
	SeccompProfile  string // inline JSON as the engine stored it, "" if none, "unconfined" if disabled
	ReadonlyRootfs  bool
	Tmpfs           map[string]string
	Memory          int64
	MemorySwap      int64
	NanoCPUs        int64
	PidsLimit       int64
	NetworkMode     string
	Runtime         string // the OCI runtime the engine will run it with
	Privileged      bool
	PidMode         string
	IpcMode         string
	UTSMode         string
	UsernsMode      string
	CgroupnsMode    string
	Devices         int // number of devices passed through
	MaskedPaths     []string
	ReadonlyPaths   []string
	Mounts          []Mount
	Entrypoint      []string
	Cmd             []string
	State           string
	ExitCode        int
	StartedAt       time.Time
	Env             []string
	Health          *Health // the configured check, nil if none
	// HealthStatus is the check's verdict: "starting", "healthy",
	// "unhealthy", or "" without a check.
	HealthStatus string
}

// TTY is a running interactive exec: reading gives the terminal's output,
// writing sends keys (only if it was started with stdin).
type TTY interface {
	io.ReadWriteCloser
	Resize(ctx context.Context, rows, cols uint) error
	// Wait returns the exit code once the process ended.
	Wait(ctx context.Context) (int, error)
}

// Stream is a running non-interactive exec (ExecStream): reading gives its
// standard output, exactly as written; closing ends the session and closes
// the program's standard input.
type Stream interface {
	io.ReadCloser
	// Wait returns the exit code once the process ended, and the last few
	// KiB of what it wrote to standard error.
	Wait(ctx context.Context) (code int, stderr string, err error)
}

// ExecOptions is a command ExecAttached runs. User is required: the caller
// decides whose command it is, never the image's default.
type ExecOptions struct {
	Argv []string
	User string // uid:gid
	Env  []string
	TTY  bool
	// Rows and Cols size the TTY; Resized sends new sizes.
	Rows, Cols uint
	Resized    <-chan [2]uint
	// Stdin, when not nil, is copied to the command, and its end closes
	// the command's standard input.
	Stdin io.Reader
	// Stdout and Stderr get the command's output; on a TTY all of it
	// arrives on Stdout.
	Stdout, Stderr io.Writer
}

// ExecResult is the outcome of Exec. Output beyond MaxExecOutput per
// stream is discarded and Truncated set: what a container prints is
// hostile, and must not fill the host's memory.
type ExecResult struct {
	Stdout    string
	Stderr    string
	ExitCode  int
	Truncated bool
}

// MaxExecOutput bounds what Exec keeps of each of stdout and stderr.
const MaxExecOutput = 16 << 20
