package runner_test

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ptyProc is a command running on a pseudo-terminal of the test's own: the
// test is the operator's terminal and reads every byte that arrives.
type ptyProc struct {
	t      *testing.T
	master *os.File
	cmd    *exec.Cmd
	mu     sync.Mutex
	got    bytes.Buffer
	done   chan struct{} // the command exited
	read   chan struct{} // the terminal has read all it will get
}

func startPTY(t *testing.T, env []string, argv ...string) *ptyProc {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.IoctlSetWinsize(int(slave.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 30, Col: 120})
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), append([]string{"TERM=xterm-256color"}, env...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	p := &ptyProc{t: t, master: master, cmd: cmd, done: make(chan struct{}), read: make(chan struct{})}
	go func() {
		defer close(p.read)
		buf := make([]byte, 32<<10)
		for {
			n, err := master.Read(buf)
			p.mu.Lock()
			p.got.Write(buf[:n])
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
		master.Close()
	})
	return p
}

// bytes returns everything the terminal received so far.
func (p *ptyProc) bytes() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.got.Bytes())
}

// waitFor waits until the terminal received want n times.
func (p *ptyProc) waitFor(want string, n int, within time.Duration) []byte {
	p.t.Helper()
	deadline := time.Now().Add(within)
	for {
		b := p.bytes()
		if bytes.Count(b, []byte(want)) >= n {
			return b
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("the terminal never received %q %d times; it received %q", want, n, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// type sends keys as the operator would.
func (p *ptyProc) typeKeys(s string) { p.master.WriteString(s) }

// exit waits for the command to end.
func (p *ptyProc) exit(within time.Duration) {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		p.t.Fatalf("%v did not exit within %s; the terminal shows %q", p.cmd.Args, within, p.bytes())
	}
	// Once every holder of the terminal is gone, reading it ends.
	select {
	case <-p.read:
	case <-time.After(5 * time.Second):
	}
}
