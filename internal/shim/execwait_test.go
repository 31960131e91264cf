package shim

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY returns a terminal pair: the test plays the terminal (tmux) on
// the master.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// readUntil reads the master until what it got contains want.
func readUntil(t *testing.T, m *os.File, got *bytes.Buffer, want string) {
	t.Helper()
	m.SetReadDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 1024)
	for !strings.Contains(got.String(), want) {
		n, err := m.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			t.Fatalf("terminal read %q, still waiting for %q: %v", got.String(), want, err)
		}
	}
}

// In a pane, `runner-agent exec` outlives its command until the terminal
// has read everything the command printed: it asks for the cursor position
// after the command's output and exits only when the answer came, with the
// command's status or signal. (tmux 3.3 drops the output of a pane process
// that exits before tmux read it.)
func TestExecInPaneWaitsUntilTheTerminalReadTheOutput(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		script, out string
		code        int
		sig         syscall.Signal
	}{
		{"echo checking; exit 7", "checking\r\n", 7, 0},
		{"echo dying; kill -9 $$", "dying\r\n", 0, syscall.SIGKILL},
	} {
		t.Run(tc.out[:5], func(t *testing.T) {
			m, s := openPTY(t)
			cmd := exec.Command(self, "exec", "--", "sh", "-c", tc.script)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = s, s, s
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			go func() { cmd.Wait(); close(exited) }()
			t.Cleanup(func() { cmd.Process.Kill(); <-exited })
			s.Close()
			var got bytes.Buffer
			readUntil(t, m, &got, "\x1b[6n")
			if i := strings.Index(got.String(), "\x1b[6n"); !strings.Contains(got.String()[:i], tc.out) {
				t.Fatalf("the terminal got %q: want %q before the question", got.String(), tc.out)
			}
			select {
			case <-exited:
				t.Fatalf("exec exited before the terminal answered (%v)", cmd.ProcessState)
			default:
			}
			// Input the command did not read comes first; then the answer.
			if _, err := m.Write([]byte("typed ahead\x1b[12;1R")); err != nil {
				t.Fatal(err)
			}
			select {
			case <-exited:
			case <-time.After(20 * time.Second):
				t.Fatal("exec did not exit after the terminal answered")
			}
			ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
			if tc.sig != 0 {
				if !ws.Signaled() || ws.Signal() != tc.sig {
					t.Errorf("exec ended %v, want killed by %v", cmd.ProcessState, tc.sig)
				}
			} else if ws.Signaled() || ws.ExitStatus() != tc.code {
				t.Errorf("exec ended %v, want exit status %d", cmd.ProcessState, tc.code)
			}
		})
	}
}
