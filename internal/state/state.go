// Package state lays out the runner's per-run directory on the host. Only
// an agent's own relay directory and credential file are ever mounted into
// its container; the rest (the operator's socket, other agents' sockets and
// credentials, journal, audit log) is private to the operator.
//
//	$RUNNER_STATE_DIR (default $XDG_STATE_HOME/runner, ~/.local/state/runner)   0711
//	  runs/RUN/                 0711  traversable, not listable
//	    relay/                  0700  other host users reach no socket in it
//	      AGENT/                0755  mounted read-only at /run/runner in AGENT's container only
//	        relay.sock          0666  AGENT's socket, the only one it holds
//	    egress/                 0700  other host users reach no proxy socket in it
//	      AGENT/                0755  only for an agent with egress; mounted read-only at
//	                                  /run/runner-egress in AGENT's container only
//	        proxy.sock          0666  AGENT's egress proxy socket (the proxy's identity of AGENT)
//	    workspaces/             0700  only for agents with a workspace block (internal/workspace)
//	      AGENT/                      AGENT's private git clone, owned by its host uid; mounted
//	                                  read-write at its workspace path in AGENT's container only
//	    private/                0700
//	      operator.sock         0600  the operator's relay socket, mounted nowhere
//	      relay.json            0600  the relay's config, with every credential
//	      services.json         0600  what the host-services process needs besides relay.json
//	      services.pid          0600  its pid and start time; services.lock is locked (OFD) while it runs
//	      services.sock         0600  its control socket (reload, status), for the operator only
//	      services.log          its log: the relay's, the recorder's, the supervisor's
//	      journal/              the relay's durable queue
//	      audit.log             hash-chained audit log (its newest segment; audit.log.NNNNNN the older)
//	      creds/AGENT           0400  one agent's credential, bind-mounted into its container only,
//	                                  owned by the agent's host uid (0444 when runner cannot chown)
//	      creds/operator        0400
//	      transcripts/          0700  what each agent's pane printed (AGENT.log, AGENT.log.1)
//	      workspaces.json       0600  each clone's repository, ref, base commit, last fetch (host-written only)
//	      egress.json           0600  each agent's egress allow/deny lists (internal/egress/rules.File), written by apply
//	  archive/RUN-TIME.audit.log   audit logs of destroyed runs
//	  kept/RUN-AGENT-TIME/         workspaces destroy could not fetch (agent-written: run no git there)
package state

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/runner-dev/runner/internal/names"
)

// Root returns the state directory the environment selects.
func Root() (string, error) {
	if d := os.Getenv("RUNNER_STATE_DIR"); d != "" {
		return filepath.Abs(d)
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "runner"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("cannot find a state directory: %w; set RUNNER_STATE_DIR", err)
	}
	return filepath.Join(home, ".local", "state", "runner"), nil
}

// Run is one run's directory.
type Run struct {
	Root string // the state root
	Name string
}

// ForRun returns the layout of run under the environment's state root.
func ForRun(run string) (Run, error) {
	if err := names.Check("run", run); err != nil {
		return Run{}, err
	}
	root, err := Root()
	if err != nil {
		return Run{}, err
	}
	return Run{Root: root, Name: run}, nil
}

func (r Run) Dir() string         { return filepath.Join(r.Root, "runs", r.Name) }
func (r Run) RelayDir() string    { return filepath.Join(r.Dir(), "relay") }
func (r Run) Private() string     { return filepath.Join(r.Dir(), "private") }
func (r Run) RelayConfig() string { return filepath.Join(r.Private(), "relay.json") }
func (r Run) Journal() string     { return filepath.Join(r.Private(), "journal") }
func (r Run) Audit() string       { return filepath.Join(r.Private(), "audit.log") }
func (r Run) Transcripts() string { return filepath.Join(r.Private(), "transcripts") }
func (r Run) Egress() string      { return filepath.Join(r.Private(), "egress.json") }
func (r Run) EgressDir() string   { return filepath.Join(r.Dir(), "egress") }

// The run's host-services process (the relay, the recorder and the egress
// proxy in one process): its config, pid file, lock, control socket, log.
func (r Run) ServicesConfig() string { return filepath.Join(r.Private(), "services.json") }
func (r Run) ServicesPID() string    { return filepath.Join(r.Private(), "services.pid") }
func (r Run) ServicesLock() string   { return filepath.Join(r.Private(), "services.lock") }
func (r Run) ServicesSocket() string { return filepath.Join(r.Private(), "services.sock") }
func (r Run) ServicesLog() string    { return filepath.Join(r.Private(), "services.log") }
func (r Run) Cred(id string) string {
	return filepath.Join(r.Private(), "creds", id)
}

// AgentRelayDir is the directory mounted at /run/runner in agent's
// container: it holds agent's socket and nothing else.
func (r Run) AgentRelayDir(agent string) string { return filepath.Join(r.RelayDir(), agent) }

// AgentSocket is agent's relay socket; it appears in its container as
// /run/runner/relay.sock.
func (r Run) AgentSocket(agent string) string {
	return filepath.Join(r.AgentRelayDir(agent), "relay.sock")
}

// EgressAgentDir is the directory mounted at /run/runner-egress in agent's
// container when agent has egress: it holds agent's proxy socket and
// nothing else.
func (r Run) EgressAgentDir(agent string) string { return filepath.Join(r.EgressDir(), agent) }

// EgressSocket is agent's egress proxy socket; it appears in its container
// as /run/runner-egress/proxy.sock.
func (r Run) EgressSocket(agent string) string {
	return filepath.Join(r.EgressAgentDir(agent), "proxy.sock")
}

// CreateEgressAgentDir makes agent's proxy socket directory (0755 like the
// relay's: its container's uid must reach the socket; the 0700 parent keeps
// host users out).
func (r Run) CreateEgressAgentDir(agent string) error {
	if err := names.Check("agent", agent); err != nil {
		return err
	}
	return r.mkdir(r.EgressAgentDir(agent), 0o755)
}

// OperatorSocket is the operator's relay socket, in the private directory.
func (r Run) OperatorSocket() string { return filepath.Join(r.Private(), "operator.sock") }

// CreateAgentRelayDir makes agent's relay directory (0755: its container's
// uid must reach the socket in it; the 0700 parent keeps host users out).
func (r Run) CreateAgentRelayDir(agent string) error {
	if err := names.Check("agent", agent); err != nil {
		return err
	}
	return r.mkdir(r.AgentRelayDir(agent), 0o755)
}

// Exists reports whether the run has state on this host.
func (r Run) Exists() bool {
	_, err := os.Stat(r.Dir())
	return err == nil
}

// Create makes the directories with their modes. When runner runs as root
// but the state root belongs to another user (a rootless engine's owner),
// the directories are given to that user, so its daemon can reach the
// mount sources in them.
func (r Run) Create() error {
	// The root's parents (e.g. ~/.local/state) may not exist yet on a
	// fresh machine; XDG asks for 0700 there.
	if err := os.MkdirAll(filepath.Dir(r.Root), 0o700); err != nil {
		return fmt.Errorf("creating %s: %w (set RUNNER_STATE_DIR to a writable place)", filepath.Dir(r.Root), err)
	}
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{
		{r.Root, 0o711},
		{filepath.Join(r.Root, "runs"), 0o711},
		{r.Dir(), 0o711},
		{r.RelayDir(), 0o700},
		{r.EgressDir(), 0o700},
		{r.Private(), 0o700},
		{filepath.Join(r.Private(), "creds"), 0o700},
		{r.Journal(), 0o700},
		{r.Transcripts(), 0o700},
	} {
		if err := r.mkdir(d.path, d.mode); err != nil {
			return err
		}
	}
	return nil
}

func (r Run) mkdir(path string, mode os.FileMode) error {
	if err := os.Mkdir(path, mode); err != nil && !os.IsExist(err) {
		return fmt.Errorf("creating state directory %s: %w (set RUNNER_STATE_DIR to a writable place)", path, err)
	}
	// Mkdir honours the umask; the modes here are the point.
	if err := os.Chmod(path, mode); err != nil {
		return err
	}
	return r.adopt(path)
}

// adopt gives path to the owner of the state root when we are root.
func (r Run) adopt(path string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	fi, err := os.Stat(r.Root)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 {
		return nil
	}
	return os.Lchown(path, int(st.Uid), int(st.Gid))
}

// WriteFile writes a private file atomically with mode.
func (r Run) WriteFile(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return r.adopt(path)
}

// Remove deletes the run's state, first moving its audit log to the archive
// so what happened in a run outlives it.
func (r Run) Remove() (archived string, err error) {
	if _, err := os.Stat(r.Audit()); err == nil {
		dir := filepath.Join(r.Root, "archive")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", err
		}
		archived = filepath.Join(dir, fmt.Sprintf("%s-%s.audit.log", r.Name, time.Now().UTC().Format("20060102T150405Z")))
		// Older segments (audit.log.000001, ...) go with it, under the
		// same suffixes, so the archive verifies as the log did.
		olds, _ := filepath.Glob(r.Audit() + ".[0-9][0-9][0-9][0-9][0-9][0-9]*")
		for _, p := range olds {
			if err := os.Rename(p, archived+strings.TrimPrefix(p, r.Audit())); err != nil {
				return "", err
			}
		}
		if err := os.Rename(r.Audit(), archived); err != nil {
			return "", err
		}
	}
	return archived, os.RemoveAll(r.Dir())
}
