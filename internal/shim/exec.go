package shim

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// Exec replaces this process with argv (looked up in PATH, never through a
// shell). It only returns on failure, with the exit code to use: 127 when the
// command does not exist, 126 when it cannot be executed.
// (In a pane, ExecMain runs the command with execPane instead, which
// keeps an error message from being dropped by tmux too.)
func Exec(argv []string, stderr io.Writer) int {
	return execve(argv, stderr)
}

func execve(argv []string, stderr io.Writer) int {
	if len(argv) == 0 || argv[0] == "" {
		fmt.Fprintln(stderr, "runner-agent: exec: no command given: usage: runner-agent exec -- COMMAND [ARG...]")
		return ExitUsage
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(stderr, "runner-agent: command %q not found in PATH\n", argv[0])
			return ExitNotFound
		}
		fmt.Fprintf(stderr, "runner-agent: command %q cannot be run: %v\n", argv[0], err)
		return ExitNotExecutable
	}
	err = syscall.Exec(path, argv, os.Environ())
	fmt.Fprintf(stderr, "runner-agent: exec %q: %v\n", path, err)
	if errors.Is(err, syscall.ENOENT) {
		return ExitNotFound
	}
	return ExitNotExecutable
}

// ExecMain is `runner-agent exec [--note TEXT] -- COMMAND [ARG...]`: it
// prints TEXT (sanitized, on a line of its own) where the pane shows it,
// then runs the command: on a terminal (a pane) as a child, until tmux
// has read its output (see execwait.go), elsewhere with Exec. Init's supervisor passes the note when it restarts the
// command, so the pane says which restart this is.
func ExecMain(args []string, stdout, stderr io.Writer) int {
	if len(args) >= 2 && args[0] == "--note" {
		fmt.Fprintln(stdout, strings.ReplaceAll(SanitizeMessage(args[1]), "\n", " "))
		args = args[2:]
	}
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if paneTerminal() {
		return execPane(args, stderr)
	}
	return Exec(args, stderr)
}
