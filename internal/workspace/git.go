// Package workspace gives each agent a private git clone of a host
// repository and brings the agent's commits back without any host process
// reading what the agent wrote.
//
// The rules (SECURITY.md, "Workspaces"):
//
//   - The host repository is the operator's and trusted: host git reads it
//     (to clone from it, to receive a fetch into it, to diff), always from
//     an argv, with a sanitised environment and hooks, fsmonitor and every
//     transport but the one needed switched off (hostGit).
//   - A clone is made by host git before any container has seen it, then
//     given to the agent's uid. From then on no host process runs git in
//     it or reads its git files: status runs git inside the agent's
//     container, and fetch runs `git upload-pack` there, through the
//     engine's exec, with the host's `git fetch` receiving a checked pack
//     (transfer.fsckObjects) of bounded size over the exec stream.
//   - What comes back (ref names, git's messages, status lines) is hostile
//     text: it is parsed strictly and printed only through termsafe.
package workspace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/runner-dev/runner/internal/termsafe"
)

// hostConfig is given to every host git: nothing it does may run a
// program named by a config or a hook, or reach the network. Command-line
// settings win over the repository's own config.
var hostConfig = []string{
	"core.hooksPath=/dev/null",
	"core.fsmonitor=false",
	"core.sshCommand=false",
	"core.askPass=false",
	"credential.helper=",
	"protocol.allow=never",
	"gc.auto=0",
	"maintenance.auto=false",
	"fetch.writeCommitGraph=false",
	"core.logAllRefUpdates=false",
	"submodule.recurse=false",
	"fetch.recurseSubmodules=false",
	"diff.external=",
}

// hostEnv is the whole environment of a host git: no GIT_* variable of the
// caller's (GIT_DIR, GIT_SSH, GIT_EXEC_PATH, ...), no system or global
// config, no prompts, and a stable C locale for parsing.
func hostEnv(extra ...string) []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/bin:/usr/bin:/bin"
	}
	env := []string{
		"PATH=" + path,
		"HOME=/nonexistent",
		"LC_ALL=C",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_ALLOW_PROTOCOL=file",
		"GIT_NO_LAZY_FETCH=1",
	}
	return append(env, extra...)
}

// gitError is a failed host git, with what it said (sanitised: in a fetch
// it quotes the agent's upload-pack).
type gitError struct {
	args   []string
	stderr string
	err    error
}

func (e *gitError) Error() string {
	msg := strings.TrimSpace(termsafe.Text(e.stderr))
	if len(msg) > 2000 {
		msg = msg[:2000] + " [...]"
	}
	if msg == "" {
		msg = e.err.Error()
	}
	return fmt.Sprintf("git %s: %s", e.args[0], msg)
}

func (e *gitError) Unwrap() error { return e.err }

// hostGit runs git with args in dir (the host repository, or a clone no
// container has seen yet) and returns its standard output.
func hostGit(ctx context.Context, dir string, env []string, args ...string) (string, error) {
	argv := make([]string, 0, 2*len(hostConfig)+len(args)+2)
	for _, c := range hostConfig {
		argv = append(argv, "-c", c)
	}
	argv = append(argv, args...)
	cmd := exec.CommandContext(ctx, "git", argv...)
	cmd.Dir = dir
	// Git looks for a repository upwards; it must find the one in dir or
	// none at all.
	cmd.Env = hostEnv(append([]string{"GIT_CEILING_DIRECTORIES=" + filepath.Dir(dir)}, env...)...)
	cmd.WaitDelay = 5 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &limited{buf: &errb, max: 64 << 10}
	if err := cmd.Run(); err != nil {
		var ee *exec.Error
		if errors.As(err, &ee) {
			return "", fmt.Errorf("git is needed on this host for workspaces: %w (install git)", err)
		}
		return out.String(), &gitError{args: args, stderr: errb.String(), err: err}
	}
	return out.String(), nil
}

// limited keeps the first max bytes written to it and drops the rest.
type limited struct {
	buf *bytes.Buffer
	max int
}

func (l *limited) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
