package shim

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// In a tmux pane, `runner-agent exec` does not replace itself with the
// command: it runs it as a child and exits with its status only once tmux
// has read everything the command printed. tmux 3.3 destroys a pane's
// terminal as soon as it reaps the pane's process, and when that process
// exits before tmux has read its output (a command that exits at once, on
// a loaded machine) the output is dropped: `runner run` then reports a
// command's status without what it printed. So, after the command, this
// process asks the terminal for the cursor position (DSR, ESC [ 6 n) and
// waits for the answer: tmux parses a pane's output in order, so when it
// answers it has read every byte written before the question.

// drainTimeout bounds the wait for the terminal's answer (a terminal that
// does not answer DSR, or a hung-up one, must not keep the pane alive).
var drainTimeout = 10 * time.Second

// cursorReport is a terminal's answer to DSR 6.
var cursorReport = regexp.MustCompile(`\x1b\[[0-9]+;[0-9]+R`)

// paneTerminal reports whether stdin and stdout are one terminal (a pane).
func paneTerminal() bool {
	if _, err := unix.IoctlGetTermios(0, unix.TCGETS); err != nil {
		return false
	}
	var in, out unix.Stat_t
	return unix.Fstat(0, &in) == nil && unix.Fstat(1, &out) == nil && in.Rdev == out.Rdev && in.Ino == out.Ino
}

// execInPane runs argv as a child on this process's terminal and returns
// the exit code to use after drainTerminal, or, when a signal killed the
// child, that signal (this process then dies of it too, so tmux reports
// the same).
func execInPane(argv []string, stderr io.Writer) (code int, sig syscall.Signal) {
	if len(argv) == 0 || argv[0] == "" {
		fmt.Fprintln(stderr, "runner-agent: exec: no command given: usage: runner-agent exec -- COMMAND [ARG...]")
		return ExitUsage, 0
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(stderr, "runner-agent: command %q not found in PATH\n", argv[0])
			return ExitNotFound, 0
		}
		fmt.Fprintf(stderr, "runner-agent: command %q cannot be run: %v\n", argv[0], err)
		return ExitNotExecutable, 0
	}
	// The child shares this process group, the terminal's foreground one,
	// so the kernel sends it the terminal's ^C, ^\ and ^Z itself: here they
	// are caught (a caught signal is back to its default in the child after
	// exec) and dropped. Signals for this process alone are passed on: a
	// hang-up (tmux closing the pane) goes to the session leader, which
	// this process is.
	tty := make(chan os.Signal, 8)
	signal.Notify(tty, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU)
	fwd := make(chan os.Signal, 8)
	signal.Notify(fwd, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGCONT)
	defer signal.Stop(tty)
	defer signal.Stop(fwd)
	cmd := &exec.Cmd{Path: path, Args: argv, Env: os.Environ(), Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "runner-agent: exec %q: %v\n", path, err)
		if errors.Is(err, syscall.ENOENT) {
			return ExitNotFound, 0
		}
		return ExitNotExecutable, 0
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-fwd:
				_ = cmd.Process.Signal(s)
			case <-tty:
			case <-done:
				return
			}
		}
	}()
	_ = cmd.Wait()
	close(done)
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return 128 + int(ws.Signal()), ws.Signal()
	}
	return ws.ExitStatus(), 0
}

// drainTerminal returns once the terminal on fd (stdin; the question goes
// to stdout) has answered DSR 6, or after timeout. The answer comes after
// any input the command did not read; both are discarded.
func drainTerminal(timeout time.Duration) error {
	old, err := unix.IoctlGetTermios(0, unix.TCGETS)
	if err != nil {
		return err
	}
	raw := *old
	raw.Lflag &^= unix.ICANON | unix.ECHO
	raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 0, 1 // reads return after 0.1s
	if err := unix.IoctlSetTermios(0, unix.TCSETS, &raw); err != nil {
		return err
	}
	defer unix.IoctlSetTermios(0, unix.TCSETS, old)
	if _, err := unix.Write(1, []byte("\x1b[6n")); err != nil {
		return err
	}
	var got []byte
	buf := make([]byte, 256)
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
		n, err := unix.Read(0, buf)
		if n > 0 {
			got = append(got, buf[:n]...)
			if cursorReport.Match(got) {
				return nil
			}
			if len(got) > 4096 {
				got = got[len(got)-64:] // unread input: keep what may start a report
			}
		}
		if err != nil && err != unix.EINTR && err != unix.EAGAIN {
			return err
		}
	}
	return fmt.Errorf("the terminal did not answer within %s", timeout)
}

// execPane is Exec in a pane: run, drain, exit like the command did.
func execPane(argv []string, stderr io.Writer) int {
	code, sig := execInPane(argv, stderr)
	_ = drainTerminal(drainTimeout)
	if sig != 0 {
		signal.Reset(sig)
		_ = unix.Kill(os.Getpid(), sig) // delivered before Kill returns; if not, the code says it
	}
	return code
}
