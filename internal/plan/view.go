package plan

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// View is one agent's settings as plan compares them, with defaults filled
// in. Apply records the view each container was created from in its
// runner.agent-config label, so plan diffs against what is deployed, not
// against the file of the last apply (which may be gone or edited).
type View struct {
	Image       string            `json:"image"`
	ImageID     string            `json:"image_id,omitempty"`
	Command     []string          `json:"command"`
	Env         map[string]string `json:"env,omitempty"`
	User        string            `json:"user"`
	Memory      int64             `json:"memory"`
	NanoCPUs    int64             `json:"nano_cpus"`
	Pids        int64             `json:"pids"`
	Network     string            `json:"network"`
	Workdir     string            `json:"workdir"`
	TmpSize     int64             `json:"tmp_size"`
	HomeSize    int64             `json:"home_size"`
	Restart     string            `json:"restart"`
	MaxRestarts int               `json:"max_restarts"`
	Mounts      []MountView       `json:"mounts,omitempty"`
	// Secrets maps each secret's name to its binding (config
	// Secret.Binding: inject hosts and header, or file path), never its
	// value.
	Secrets map[string]string `json:"secrets,omitempty"`
}

// MountView is one bind mount: its target, the host path its source
// resolved to, and whether the agent can write it.
type MountView struct {
	Target   string `json:"target"`
	Source   string `json:"source"`
	ReadOnly bool   `json:"read_only"`
}

// Sensitive replaces a sensitive value in a View (and so in the label and
// in every plan output): a change to it still changes the config hash, and
// plan says a sensitive value changed without showing either value.
// HOOK (secrets): values from secret blocks / sensitive variables must be
// replaced by Sensitive before a View is built (runner.viewOf).
const Sensitive = "(sensitive value)"

// viewVersion prefixes the label so a later format can be told apart.
const viewVersion = "v1:"

// EncodeView is the runner.agent-config label value.
func EncodeView(v View) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain strings and numbers always encode
	}
	return viewVersion + string(b)
}

// DecodeView reads a runner.agent-config label; ok is false when it is
// absent (a container from before the label) or not one runner wrote.
func DecodeView(label string) (View, bool) {
	rest, ok := strings.CutPrefix(label, viewVersion)
	if !ok {
		return View{}, false
	}
	var v View
	if err := json.Unmarshal([]byte(rest), &v); err != nil {
		return View{}, false
	}
	return v, true
}

// InPlace are the settings of an agent that live outside its container, in
// the run's state on the host, and so change without replacing it: the
// relay's ACL (send_to resolved to exact names), its check-ins, the brief.
type InPlace struct {
	SendTo   []string // exact peer names, sorted, as the relay's ACL holds them
	Checkins []string // rendered with CheckinText
	// BriefSHA is the sha256 of the brief last delivered ("" none).
	BriefSHA string
}

// CheckinText renders a check-in as plan shows and compares it.
func CheckinText(every, afterIdle time.Duration, message string) string {
	when := "every " + every.String()
	if afterIdle > 0 {
		when = "after_idle " + afterIdle.String()
	}
	return when + ": " + strconv.Quote(message)
}

// Bytes renders a byte size as the file would write it: 512MiB, 1GiB.
func Bytes(n int64) string {
	switch {
	case n == 0:
		return "0"
	case n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// CPUs renders nano-CPUs as the file's cpus.
func CPUs(n int64) string { return strconv.FormatFloat(float64(n)/1e9, 'f', -1, 64) }

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
