package runner

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// daemon is a helper process that apply starts for a run and that outlives
// the CLI: the relay and the transcript recorder. Both are this program
// started with a subcommand, in their own session, logging to a file in the
// run's private directory and writing a pid file once they are ready.
type daemon struct {
	name    string   // for messages: "relay", "transcript recorder"
	sub     []string // subcommand, e.g. relay serve; the state root and run are appended
	pidFile string
	logFile string
	env     []string // added to this process's environment
	// ready reports whether the started process (pid) is serving.
	ready func(pid int) bool
}

// program is the argv that runs this program (Runner.Program, or the
// running executable).
func (r *Runner) program() ([]string, error) {
	if len(r.Program) > 0 {
		return r.Program, nil
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return []string{self}, nil
}

// startDaemon starts d for the run st and waits up to 10s until it is ready,
// reporting its log's tail if it exits or hangs.
func (r *Runner) startDaemon(ctx context.Context, d daemon, root, run string) (int, error) {
	prog, err := r.program()
	if err != nil {
		return 0, err
	}
	argv := append(append(append([]string(nil), prog...), d.sub...), root, run)
	logf, err := os.OpenFile(d.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Env = append(os.Environ(), d.env...)
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting the %s (%s): %w", d.name, strings.Join(argv, " "), err)
	}
	pid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(10 * time.Second)
	for {
		if d.ready(pid) {
			r.log().Info(d.name+" started", "run", run, "pid", pid, "log", d.logFile)
			return pid, nil
		}
		select {
		case err := <-exited:
			return 0, fmt.Errorf("the %s exited at start (%v): %s", d.name, err, tail(d.logFile, 10))
		case <-deadline:
			return 0, fmt.Errorf("the %s did not start within 10s: %s", d.name, tail(d.logFile, 10))
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// livePID is the pid in a pid file if that process is alive.
func livePID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || syscall.Kill(pid, 0) != nil {
		return 0
	}
	return pid
}

// stopPID asks a daemon to stop and waits for it, then insists.
func stopPID(pid int) {
	syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 100; i++ {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
