package config

import (
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Config is a fully parsed, validated and expanded agents file. Nothing in it
// has touched an engine yet.
type Config struct {
	// File is the absolute path of the file that was loaded; Dir its directory
	// (relative mount sources are resolved against it).
	File string
	Dir  string

	Run    Run
	Agents []Agent // expanded (count = 3 gives eng-1..eng-3), sorted by Name
}

// Run is the `run "NAME" { ... }` block.
type Run struct {
	Name            string
	Engine          string // "docker" (default) or "containerd"
	RequireRootless bool
	// AcceptUnenforced lists limits the operator accepts the engine cannot
	// enforce (subset of "memory", "cpus", "pids"). Anything else not
	// enforceable is an apply error.
	AcceptUnenforced []string
	// EgressDefault is egress_default as written: the allow-list of every
	// agent that has no egress block (and is not on network "bridge").
	EgressDefault []string
	// Runtime is the run's default OCI runtime for its agents: "" (the
	// engine's default), RuntimeRunc or RuntimeRunsc.
	Runtime   string
	DeclRange hcl.Range
}

// Runtimes an agent may ask for.
const (
	RuntimeRunc  = "runc"  // the host kernel, behind namespaces and seccomp
	RuntimeRunsc = "runsc" // gVisor: a user-space kernel between agent and host
)

// Agent is one `agent "NAME" { ... }` block after count expansion.
type Agent struct {
	Name     string
	Image    string            // default DefaultImage
	Command  []string          // required, argv; never given to a shell by runner
	Env      map[string]string // plain environment
	User     string            // "uid:gid", numeric, uid != 0, as the file sets it; "" = runner gives the agent a uid of its own (internal/uids)
	Memory   int64             // bytes; default 512 MiB
	NanoCPUs int64             // cpus * 1e9; default 1 CPU
	Pids     int64             // default 256
	Network  string            // "none" (default) or "bridge"
	// Runtime is the OCI runtime: the agent's runtime attribute, else the
	// run's; "" is the engine's default (runc).
	Runtime  string
	Workdir  string // default "/home/agent" (or the first mount's target if set? no: explicit only)
	Mounts   []Mount
	TmpSize  int64 // bytes for the /tmp tmpfs; default 64 MiB
	HomeSize int64 // bytes for the /home/agent tmpfs; default 64 MiB

	// SendTo is who this agent may message, as written: agent names, path.Match
	// globs over agent names ("eng-*"), and Operator. Empty means nobody.
	// Globs never match the agent itself nor Operator: an agent messages
	// itself or the operator only if that name is listed literally. Ask
	// Config.MayMessage or Config.Peers rather than matching these yourself,
	// and give the relay Peers (exact names) as the ACL, not these patterns.
	SendTo []string
	// Checkins are the recurring messages the relay delivers to this agent.
	Checkins []Checkin
	// Brief is delivered as the agent's first message once it is up; "" means
	// none (the attribute is absent or null).
	Brief string

	// Restart is what happens when the agent's command exits: RestartOnFailure
	// (the default), RestartAlways or RestartNever. The container and its
	// tmux stay up either way; a restart respawns the command in its pane.
	Restart string
	// MaxRestarts bounds the restarts over the container's life (0 to
	// MaxMaxRestarts; default DefaultMaxRestarts).
	MaxRestarts int
	// RestartSet says the file set restart itself. `runner run` (CI mode)
	// runs an agent that did not with RestartNever: a job's failure is its
	// result.
	RestartSet bool

	// Egress is what the agent may reach through the run's egress proxy:
	// its egress block, else the run's egress_default, else nil (no
	// egress, as with network "none" alone).
	Egress *Egress
	// Secrets are the agent's secret blocks, sorted by name (secrets.go).
	Secrets []Secret

	// Workspace is the agent's private clone of a host repository, or nil.
	Workspace *Workspace

	DeclRange hcl.Range // where the block was declared, for errors found later
}

// Checkin is a `checkin { every = "30m" message = "..." }` block: the relay
// delivers Message to the agent every Every. With after_idle instead of
// every, it delivers Message once the agent's pane has printed nothing for
// AfterIdle (once per quiet spell). Exactly one of Every and AfterIdle is set.
type Checkin struct {
	Every     time.Duration // from MinCheckinEvery to MaxCheckinEvery, or 0
	AfterIdle time.Duration // from MinCheckinEvery to MaxCheckinEvery, or 0
	Message   string        // non-empty, at most MaxMessage bytes, UTF-8, no NUL
	DeclRange hcl.Range
}

// Mount is a host bind mount as the file declares it. Source is only the
// path the file names; what it resolves to on the host, and whether that may
// be mounted, is decided by CheckSources at the moment of use (plan, apply),
// so a run whose sources broke can still be inspected and destroyed.
type Mount struct {
	Source   string // absolute, clean host path (relative ones joined to Config.Dir); symlinks not resolved
	Target   string // absolute container path
	ReadOnly bool
	// AllowSensitive acknowledges a source in the operator's secrets (~/.ssh,
	// ~/.aws, shell rc files, ~ itself, ...): without it they are refused.
	AllowSensitive bool

	SourceRange hcl.Range // the source attribute's expression, for errors found later
	srcExpr     hcl.Expression
	srcCtx      *hcl.EvalContext
	raw         string // the source as written, for messages
}

// Defaults.
const (
	DefaultImage = "localhost/runner-agent:latest"
	// ExampleUser is the user error messages suggest.
	ExampleUser   = "40000:40000"
	DefaultMemory = 512 << 20
	DefaultCPUs   = 1.0
	DefaultPids   = 256
	// On gVisor the engine's pids limit counts the sandbox's host tasks
	// (its kernel's threads, the file proxy, one ptrace stub per agent
	// thread: ~220 for tmux and a shell here), and reaching it kills the
	// whole sandbox. runsc agents get more by default and may not go
	// below the minimum.
	DefaultPidsRunsc = 2048
	MinPidsRunsc     = 1024
	DefaultNetwork   = "none"
	DefaultWorkdir   = "/home/agent"
	DefaultTmpSize   = 64 << 20
	HomeDir          = "/home/agent"

	// Operator is the identity of the person running the run. No agent may
	// be named so; agents list it in send_to to message the operator.
	Operator = "operator"

	// MaxMessage is the largest check-in message or brief, in bytes: the
	// relay's default message limit, so whatever loads is deliverable.
	MaxMessage = 16 << 10
	// Check-in intervals: more often than once a second would flood the
	// agent's terminal; a week is the relay's longest schedule.
	MinCheckinEvery = time.Second
	MaxCheckinEvery = 7 * 24 * time.Hour

	// Restart policies (Agent.Restart).
	RestartOnFailure = "on-failure" // after a non-zero exit status or a signal
	RestartAlways    = "always"     // after any exit
	RestartNever     = "never"
	DefaultRestart   = RestartOnFailure
	// DefaultMaxRestarts and MaxMaxRestarts bound max_restarts.
	DefaultMaxRestarts = 5
	MaxMaxRestarts     = 1000

	// RelayDir is where every container gets the relay socket's directory;
	// mount targets may not overlap it.
	RelayDir = "/run/runner"
	// EgressDir is where an agent with egress gets its proxy socket's
	// directory; mount targets may not overlap it either.
	EgressDir = "/run/runner-egress"
)
