package secrets

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"syscall"
	"time"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/state"
)

// Dir is the run's secret directory, inside its private directory (0700):
// the store, the stand-in key and the run CA's key.
func Dir(st state.Run) string { return filepath.Join(st.Private(), "secrets") }

// StorePath is the secret store: the only file on disk with secret values.
func StorePath(st state.Run) string { return filepath.Join(Dir(st), "store.json") }

func keyPath(st state.Run) string { return filepath.Join(Dir(st), "standin.key") }

// Kinds of Entry.
const (
	KindInject = "inject"
	KindFile   = "file"
)

// Entry is one agent's secret as the store keeps it.
type Entry struct {
	Kind    string   `json:"kind"`
	Value   string   `json:"value"`
	StandIn string   `json:"stand_in,omitempty"` // KindInject
	Hosts   []string `json:"hosts,omitempty"`    // KindInject
	Header  string   `json:"header,omitempty"`   // KindInject, canonical
	Scheme  string   `json:"scheme,omitempty"`   // KindInject
	File    string   `json:"file,omitempty"`     // KindFile: the container path
	// Source and Refresh let the host services read a from_command or
	// from_file source again on schedule.
	Source  Source        `json:"source"`
	Refresh time.Duration `json:"refresh,omitempty"`
	Updated time.Time     `json:"updated"`
}

// Source is where an entry's value comes from, without the value.
type Source struct {
	Kind    string        `json:"kind"`
	Env     string        `json:"env,omitempty"`
	File    string        `json:"file,omitempty"`
	Command []string      `json:"command,omitempty"`
	Timeout time.Duration `json:"timeout,omitempty"`
}

// Store is every agent's secrets: agent -> secret name -> entry.
type Store struct {
	Agents map[string]map[string]Entry `json:"agents"`
}

// Binding is what must match for an entry's stand-in to be kept.
func (e Entry) sameBinding(o Entry) bool {
	return e.Kind == o.Kind && slices.Equal(e.Hosts, o.Hosts) && e.Header == o.Header && e.Scheme == o.Scheme && e.File == o.File
}

// Load reads the store; a run without one has no secrets.
func Load(st state.Run) (Store, error) {
	data, err := os.ReadFile(StorePath(st))
	if errors.Is(err, fs.ErrNotExist) {
		return Store{Agents: map[string]map[string]Entry{}}, nil
	}
	if err != nil {
		return Store{}, err
	}
	var s Store
	if err := json.Unmarshal(data, &s); err != nil {
		return Store{}, fmt.Errorf("%s: %w (apply the run again to rewrite it)", StorePath(st), err)
	}
	if s.Agents == nil {
		s.Agents = map[string]map[string]Entry{}
	}
	return s, nil
}

// Save writes the store, 0600, atomically.
func Save(st state.Run, s Store) error {
	if err := ensureDir(st); err != nil {
		return err
	}
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return st.WriteFile(StorePath(st), data, 0o600)
}

func ensureDir(st state.Run) error {
	if err := os.Mkdir(Dir(st), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("creating %s: %w", Dir(st), err)
	}
	return os.Chmod(Dir(st), 0o700)
}

// Key is the run's stand-in key: 32 random bytes made on first use, in the
// private directory, so stand-ins differ between runs and stay the same
// across applies of one run.
func Key(st state.Run) ([]byte, error) {
	if k, err := os.ReadFile(keyPath(st)); err == nil && len(k) == 32 {
		return k, nil
	}
	if err := ensureDir(st); err != nil {
		return nil, err
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	if err := st.WriteFile(keyPath(st), k, 0o600); err != nil {
		return nil, err
	}
	return k, nil
}

// Build makes the store for cfg from freshly read values, keeping each
// stand-in the old store has for the same agent, secret and binding: a
// rotated value keeps its stand-in, so the container (whose environment
// holds it) is not replaced.
func Build(key []byte, cfg *config.Config, vals Values, old Store, now time.Time) Store {
	s := Store{Agents: map[string]map[string]Entry{}}
	for _, a := range cfg.Agents {
		for _, sec := range a.Secrets {
			v, ok := vals[a.Name][sec.Name]
			if !ok {
				continue
			}
			e := Entry{
				Value: v, Refresh: sec.Refresh, Updated: now,
				Source: Source{Kind: sec.Source.Kind, Env: sec.Source.Env, File: sec.Source.File, Command: sec.Source.Command, Timeout: sec.Source.Timeout},
			}
			if sec.Inject != nil {
				e.Kind, e.Hosts, e.Header, e.Scheme = KindInject, sec.Inject.Hosts, sec.Inject.Header, sec.Inject.Scheme
			} else {
				e.Kind, e.File = KindFile, sec.File
			}
			prev, had := old.Agents[a.Name][sec.Name]
			if had && prev.Value == v {
				e.Updated = prev.Updated
			}
			if e.Kind == KindInject {
				if had && prev.sameBinding(e) && prev.StandIn != "" {
					e.StandIn = prev.StandIn
				} else {
					e.StandIn = StandIn(key, a.Name, sec.Name, v)
				}
			}
			if s.Agents[a.Name] == nil {
				s.Agents[a.Name] = map[string]Entry{}
			}
			s.Agents[a.Name][sec.Name] = e
		}
	}
	return s
}

// Equal says whether two stores hold the same entries.
func (s Store) Equal(o Store) bool {
	if len(s.Agents) != len(o.Agents) {
		return false
	}
	for _, a := range slices.Sorted(maps.Keys(s.Agents)) {
		if !reflect.DeepEqual(s.Agents[a], o.Agents[a]) {
			return false
		}
	}
	return true
}

// Values lists every secret value of the store, for redaction: value ->
// "agent/NAME".
func (s Store) Values() map[string]string {
	out := map[string]string{}
	for _, a := range slices.Sorted(maps.Keys(s.Agents)) {
		for _, n := range slices.Sorted(maps.Keys(s.Agents[a])) {
			out[s.Agents[a][n].Value] = n
		}
	}
	return out
}

// Lock serialises writers of the store (apply, the host services'
// refresher) with a flock on a file beside it; call the returned func to
// unlock.
func Lock(st state.Run) (func(), error) {
	if err := ensureDir(st); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(Dir(st), "store.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}
