package workspace

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/runner-dev/runner/internal/names"
	"github.com/runner-dev/runner/internal/state"
)

// Layout in a run's state directory:
//
//	runs/RUN/workspaces/        0700  (the state root's owner)
//	  AGENT/                    the agent's clone, owned by its host uid; mounted at its path
//	runs/RUN/private/workspaces.json   what each clone was made from, and when it was last fetched
//
// and, for work destroy could not bring back, STATE/kept/RUN-AGENT-TIME/.

// Dir is where a run's clones live.
func Dir(st state.Run) string { return filepath.Join(st.Dir(), "workspaces") }

// CloneDir is agent's clone.
func CloneDir(st state.Run, agent string) string { return filepath.Join(Dir(st), agent) }

func recordsPath(st state.Run) string { return filepath.Join(st.Private(), "workspaces.json") }

// Branch is the agent's branch in its clone.
func Branch(run, agent string) string { return "runner/" + run + "/" + agent }

// RefPrefix is where fetch puts an agent's branches in the host repository.
func RefPrefix(run, agent string) string { return "refs/runner/" + run + "/" + agent + "/" }

// Record is what the host knows of one agent's clone. Nothing in it comes
// from the clone: the agent can change its clone, not this.
type Record struct {
	Repo    string    `json:"repo"`   // the host repository, resolved
	Ref     string    `json:"ref"`    // as the file wrote it
	Base    string    `json:"base"`   // the commit the agent's branch started at
	Path    string    `json:"path"`   // where the clone is mounted
	Branch  string    `json:"branch"` // the agent's branch
	Created time.Time `json:"created"`
	// Fetched is when a fetch last brought the agent's branches into Repo;
	// Heads what they were then (ref under RefPrefix -> commit).
	Fetched *time.Time        `json:"fetched,omitempty"`
	Heads   map[string]string `json:"heads,omitempty"`
}

// Key is what the clone was made from: another key needs another clone.
func (r Record) Key() string { return r.Repo + "\x00" + r.Ref }

// Records is every agent's Record of a run.
type Records map[string]Record

// Load reads a run's records; none is an empty map.
func Load(st state.Run) (Records, error) {
	b, err := os.ReadFile(recordsPath(st))
	if errors.Is(err, fs.ErrNotExist) {
		return Records{}, nil
	}
	if err != nil {
		return nil, err
	}
	var rs Records
	if err := json.Unmarshal(b, &rs); err != nil {
		return nil, fmt.Errorf("%s: %w (remove it to forget the run's workspaces)", recordsPath(st), err)
	}
	if rs == nil {
		rs = Records{}
	}
	return rs, nil
}

// Update changes a run's records under a lock (apply, fetch and destroy
// may run at once).
func Update(st state.Run, f func(Records) error) error {
	lock, err := os.OpenFile(filepath.Join(st.Private(), "workspaces.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	rs, err := Load(st)
	if err != nil {
		return err
	}
	if err := f(rs); err != nil {
		return err
	}
	b, err := json.MarshalIndent(rs, "", "  ")
	if err != nil {
		return err
	}
	return st.WriteFile(recordsPath(st), b, 0o600)
}

// MakeDir creates the run's workspaces directory: 0700, given to the state
// root's owner (a rootless engine's user must reach the clones to mount
// them; other host users reach none).
func MakeDir(st state.Run) error {
	d := Dir(st)
	if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("creating %s: %w", d, err)
	}
	if err := os.Chmod(d, 0o700); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return nil
	}
	fi, err := os.Stat(st.Root)
	if err != nil {
		return err
	}
	if s, ok := fi.Sys().(*syscall.Stat_t); ok && s.Uid != 0 {
		return os.Lchown(d, int(s.Uid), int(s.Gid))
	}
	return nil
}

// Keep moves an agent's clone out of the run's state, where destroy will
// not remove it, and returns where it went.
func Keep(st state.Run, agent string) (string, error) {
	if err := names.Check("agent", agent); err != nil {
		return "", err
	}
	dir := filepath.Join(st.Root, "kept")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	to := filepath.Join(dir, fmt.Sprintf("%s-%s-%s", st.Name, agent, time.Now().UTC().Format("20060102T150405.000Z")))
	if err := os.Rename(CloneDir(st, agent), to); err != nil {
		return "", err
	}
	return to, nil
}
