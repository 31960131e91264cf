package shim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe to read while a process writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

type initProc struct {
	cmd    *exec.Cmd
	tm     *Tmux
	stderr *syncBuffer
	done   chan struct{}
}

// startInit runs `<test binary> init --socket S -- argv...` (the test binary
// is runner-agent, see TestMain) as a subprocess; it is a child subreaper.
func startInit(t *testing.T, env []string, argv ...string) *initProc {
	t.Helper()
	tm, _ := testTmux(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &initProc{tm: tm, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(self, append([]string{"init", "--socket", tm.Socket, "--"}, argv...)...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *initProc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		t.Fatalf("init still running after %s; stderr:\n%s", d, p.stderr.String())
		return -1
	}
}

// waitStatus polls status until cond holds.
func (p *initProc) waitStatus(t *testing.T, cond func(Status) bool) Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := ReadStatus(context.Background(), p.tm)
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never matched, last %+v; init stderr:\n%s", st, p.stderr.String())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func runMain(args ...string) (string, string, int) {
	var out, errb bytes.Buffer
	code := Main(args, &out, &errb)
	return out.String(), errb.String(), code
}

func TestInitRunsCommandAndStopsOnSIGTERM(t *testing.T) {
	p := startInit(t, nil, "/bin/sh", "-c", "echo ready; while :; do sleep 1; done")
	st := p.waitStatus(t, func(s Status) bool { return s.Tmux && s.PID != nil })
	if st.PaneDead || st.ExitStatus != nil {
		t.Errorf("status = %+v", st)
	}
	if want := []string{"/bin/sh", "-c", "echo ready; while :; do sleep 1; done"}; strings.Join(st.Command, "\x00") != strings.Join(want, "\x00") {
		t.Errorf("command = %q, want %q", st.Command, want)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, _, _ := runMain("capture", "--socket", p.tm.Socket)
		if strings.Contains(out, "ready") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("capture never showed ready: %q", out)
		}
		time.Sleep(25 * time.Millisecond)
	}
	// The pane's process is runner-agent exec, the agent its child (exec
	// waits for tmux to read the agent's last output, see execwait.go).
	children := childrenOf(*st.PID)
	var agentPID int
	for _, pid := range children {
		cmdline, _ := os.ReadFile(filepath.Join("/proc", itoa(pid), "cmdline"))
		if strings.HasPrefix(string(cmdline), "/bin/sh\x00-c\x00") {
			agentPID = pid
		}
	}
	if agentPID == 0 {
		t.Errorf("no child of the pane process %d is the agent's command (children %v)", *st.PID, children)
	}
	out, _, code := runMain("status", "--socket", p.tm.Socket)
	if code != 0 || !strings.HasPrefix(out, `{"tmux":true,"pane_dead":false,"exit_status":null,`) {
		t.Errorf("status = %d %q", code, out)
	}

	panePID := *st.PID
	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 5*time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0; stderr:\n%s", code, p.stderr.String())
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %s to stop", d)
	}
	if _, err := p.tm.ServerPID(context.Background()); !errors.Is(err, ErrNoServer) {
		t.Errorf("tmux server still answers after stop: %v", err)
	}
	// init waited for the agent (SIGHUP from tmux, then re-parented to
	// init and reaped): it is gone, not even a zombie.
	for _, pid := range []int{panePID, agentPID} {
		if err := syscall.Kill(pid, 0); pid != 0 && err != syscall.ESRCH {
			state, ppid, _ := procStat(pid)
			t.Errorf("process %d survived the stop (kill: %v, state %c, ppid %d)", pid, err, state, ppid)
		}
	}
}

func TestInitExitsWhenTmuxServerDies(t *testing.T) {
	p := startInit(t, nil, "/bin/sleep", "60")
	p.waitStatus(t, func(s Status) bool { return s.PID != nil })
	if err := p.tm.KillServer(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 5*time.Second); code != ExitServerDied {
		t.Errorf("exit code = %d, want %d", code, ExitServerDied)
	}
	if !strings.Contains(p.stderr.String(), "tmux server") {
		t.Errorf("stderr = %q", p.stderr.String())
	}
}

func TestInitCommandNotFoundStaysVisible(t *testing.T) {
	p := startInit(t, nil, "no-such-agent-xyz", "--flag")
	st := p.waitStatus(t, func(s Status) bool { return s.PaneDead })
	if st.ExitStatus == nil || *st.ExitStatus != 127 {
		t.Errorf("status = %+v, want exit status 127", st)
	}
	out, _, _ := runMain("capture", "--socket", p.tm.Socket)
	if !strings.Contains(out, `runner-agent: command "no-such-agent-xyz" not found in PATH`) ||
		!strings.Contains(out, "Pane is dead (status 127") {
		t.Errorf("capture = %q", out)
	}
	select {
	case <-p.done:
		t.Fatalf("init exited although the tmux server lives: %s", p.stderr.String())
	default:
	}
}

func TestInitArgvReachesAgentExactly(t *testing.T) {
	dir := t.TempDir()
	self, _ := os.Executable()
	out := filepath.Join(dir, "argv.json")
	p := startInit(t, nil, append([]string{self, "dump-argv", out}, nastyArgs...)...)
	st := p.waitStatus(t, func(s Status) bool { return s.PaneDead })
	if st.ExitStatus == nil || *st.ExitStatus != 0 {
		t.Fatalf("status = %+v", st)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := jsonMarshal(nastyArgs)
	if string(b) != want {
		t.Errorf("argv changed:\n got %s\nwant %s", b, want)
	}
	if want := append([]string{self, "dump-argv", out}, nastyArgs...); strings.Join(st.Command, "\x00") != strings.Join(want, "\x00") {
		t.Errorf("status command = %q, want %q (status %+v)", st.Command, want, st)
	}
}

func TestInitWithoutTmuxFailsFast(t *testing.T) {
	self, _ := os.Executable()
	empty := t.TempDir()
	cmd := exec.Command(self, "init", "--socket", filepath.Join(empty, "s"), "--", "/bin/true")
	cmd.Env = append(os.Environ(), "PATH="+empty)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 127 {
		t.Fatalf("err = %v, want exit 127", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("took %s", time.Since(start))
	}
	msg := stderr.String()
	if strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "runner-agent: tmux not found in image") ||
		!strings.Contains(msg, "runner image build") {
		t.Errorf("stderr = %q", msg)
	}
}

func TestInitUsage(t *testing.T) {
	if _, errOut, code := runMain("init", "--socket", "/nonexistent/s"); code != ExitUsage || !strings.Contains(errOut, "no command") {
		t.Errorf("code %d, %q", code, errOut)
	}
}

func TestExecNotFound(t *testing.T) {
	var stderr bytes.Buffer
	if code := Exec([]string{"no-such-cmd-xyz"}, &stderr); code != 127 {
		t.Errorf("code = %d", code)
	}
	if got := stderr.String(); got != "runner-agent: command \"no-such-cmd-xyz\" not found in PATH\n" {
		t.Errorf("stderr = %q", got)
	}
	stderr.Reset()
	if code := Exec([]string{"/etc/passwd"}, &stderr); code != 126 {
		t.Errorf("non-executable: code = %d (%s)", code, stderr.String())
	}
}

func TestStatusWithoutServer(t *testing.T) {
	dir := t.TempDir()
	out, _, code := runMain("status", "--socket", filepath.Join(dir, "s"))
	if code != 1 || !strings.HasPrefix(out, `{"tmux":false,"pane_dead":false,"exit_status":null,"exit_signal":null,"pid":null,"command":null`) {
		t.Errorf("status = %d %q", code, out)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			if _, ppid, ok := procStat(n); ok && ppid == pid {
				out = append(out, n)
			}
		}
	}
	return out
}

func jsonMarshal(v any) (string, error) { b, err := json.Marshal(v); return string(b), err }
