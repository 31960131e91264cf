package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/runner-dev/runner/internal/names"
)

// Entries is one agent's lists as the agents file wrote them.
type Entries struct {
	Allow []string `json:"allow"`
	Deny  []string `json:"deny"`
}

// File is the run's egress rules file, runs/RUN/private/egress.json:
// agent name -> its lists. apply writes it (atomically, 0600) and the
// run's egress proxy reloads it; plan reads it back to show what changed.
// An agent absent from the file has no egress. For example:
//
//	{
//	  "eng": {"allow": ["api.anthropic.com", "*.githubusercontent.com"], "deny": ["gist.githubusercontent.com"]},
//	  "ci":  {"allow": ["registry.npmjs.org:443"], "deny": []}
//	}
type File map[string]Entries

// MaxFileSize bounds what Load reads.
const MaxFileSize = 4 << 20

// Load reads and checks a rules file: every agent name valid, every entry
// parsing. A missing file is an os.ErrNotExist error (callers decide
// whether that means "no egress yet").
func Load(path string) (File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading egress rules %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("egress rules %s are larger than %d bytes", path, MaxFileSize)
	}
	file, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("egress rules %s: %w", path, err)
	}
	return file, nil
}

// Decode parses and checks a rules file's content.
func Decode(data []byte) (File, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var file File
	if err := dec.Decode(&file); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("trailing data after the rules")
	}
	if file == nil {
		file = File{}
	}
	if _, err := file.Compile(); err != nil {
		return nil, err
	}
	return file, nil
}

// Compile compiles every agent's lists.
func (f File) Compile() (map[string]*Rules, error) {
	out := make(map[string]*Rules, len(f))
	for _, agent := range f.Agents() {
		if err := names.Check("agent", agent); err != nil {
			return nil, err
		}
		e := f[agent]
		r, err := Compile(e.Allow, e.Deny)
		if err != nil {
			return nil, fmt.Errorf("agent %s: %w", agent, err)
		}
		out[agent] = r
	}
	return out, nil
}

// Agents returns the agent names, sorted.
func (f File) Agents() []string {
	out := make([]string, 0, len(f))
	for a := range f {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// Encode returns the file's JSON: agents sorted (encoding/json sorts map
// keys), empty lists as [] rather than null.
func (f File) Encode() ([]byte, error) {
	norm := make(File, len(f))
	for a, e := range f {
		if e.Allow == nil {
			e.Allow = []string{}
		}
		if e.Deny == nil {
			e.Deny = []string{}
		}
		norm[a] = e
	}
	data, err := json.MarshalIndent(norm, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// Save writes the file to path atomically (a temporary file in the same
// directory, synced, renamed over path) with mode 0600, so a reader sees
// the old rules or the new, never a mix.
func (f File) Save(path string) error {
	if _, err := f.Compile(); err != nil {
		return err
	}
	data, err := f.Encode()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".egress-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
