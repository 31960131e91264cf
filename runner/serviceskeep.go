package runner

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/runner-dev/runner/internal/audit"
	"github.com/runner-dev/runner/internal/relay"
	"github.com/runner-dev/runner/internal/services"
	"github.com/runner-dev/runner/internal/state"
)

// The host-services process is two processes: `runner services serve` (the
// supervisor: it holds the run's services lock, is the pid the pid file
// names and that destroy stops, and does nothing but keep its child
// running) and `runner services child` (the relay, the recorder, the
// egress proxy and the control socket). A child that dies, even by
// SIGKILL, is started again at once by the supervisor, and the audit log
// records it; the agents' shims reconnect by themselves. The child dies
// with the supervisor (Pdeathsig), and shares its lock (the same open file
// description), so a new supervisor cannot start while an old child still
// serves.

// Fds the supervisor hands its child.
const (
	childLockFD  = 3 // the services lock, held while either process lives
	childReadyFD = 4 // the child writes "ready\n" here once it serves
)

// keepPolicy: a child that dies after serving for 5s is started again at
// once; one that dies sooner again and again waits 100ms, doubling up to 5s
// (the shims' own reconnect backoff tops out at 5s too).
var keepPolicy = services.Policy{MinBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second, Healthy: 5 * time.Second}

// SuperviseServices is `runner services serve ROOT RUN`: it takes the
// run's services lock, starts o.ChildArgv, and restarts it whenever it
// dies, until ctx ends (SIGTERM from destroy), when it stops the child and
// returns. An error is returned only if the first child cannot serve.
func SuperviseServices(ctx context.Context, root, run string, o ServicesOptions) error {
	st, log, err := servicesRun(root, run, o)
	if err != nil {
		return err
	}
	if len(o.ChildArgv) == 0 {
		return errors.New("host services: no child command")
	}
	lock, err := takeLock(st.ServicesLock())
	if err != nil {
		return err
	}
	defer lock.Close()
	// Pdeathsig is sent when the thread that started the child exits:
	// keep this goroutine on one thread for the process's life.
	runtime.LockOSThread()
	p := services.Process{
		Policy: keepPolicy,
		Start:  func() (*exec.Cmd, <-chan error, error) { return startChild(o.ChildArgv, lock) },
		Restarted: func(ev services.Restart) {
			childRestarted(st, ev, log.Warn, log.Error)
		},
	}
	err = p.Run(ctx, func(pid int) {
		if err := writePID(st, os.Getpid()); err != nil {
			log.Error("cannot write the pid file", "error", err)
		}
		log.Info("host services supervised", "supervisor", os.Getpid(), "child", pid)
	})
	os.Remove(st.ServicesPID())
	if err != nil {
		return fmt.Errorf("host services: %w", err)
	}
	return nil
}

// childRestarted logs and audits one restart of the child.
func childRestarted(st state.Run, ev services.Restart, warn, fail func(string, ...any)) {
	detail := fmt.Sprintf("the host-services process [pid=%d] ended (%s); started again [pid=%d] after %s (%d in a row)",
		ev.OldPID, ev.Exit, ev.NewPID, ev.Delay, ev.Failures)
	if ev.Err != nil {
		detail = fmt.Sprintf("the host-services process [pid=%d] ended (%s); starting it again failed: %v (%d in a row; retrying)",
			ev.OldPID, ev.Exit, ev.Err, ev.Failures)
		fail("host services: restart failed", "detail", detail)
	} else {
		warn("host services restarted", "detail", detail)
	}
	l, err := audit.Open(st.Audit())
	if err != nil {
		fail("cannot write the audit log", "error", err)
		return
	}
	defer l.Close()
	if err := l.Append(audit.Event{Event: "services_restart", Actor: relay.Runner, Target: "services", Detail: detail}); err != nil {
		fail("cannot write the audit log", "error", err)
	}
}

// startChild starts the child with the lock and a readiness pipe; the
// channel says when it serves.
func startChild(argv []string, lock *os.File) (*exec.Cmd, <-chan error, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr // the log file
	cmd.ExtraFiles = []*os.File{lock, pw}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	err = cmd.Start()
	pw.Close()
	if err != nil {
		pr.Close()
		return nil, nil, fmt.Errorf("starting %s: %w", strings.Join(argv, " "), err)
	}
	ready := make(chan error, 1)
	go func() {
		defer pr.Close()
		line, _ := bufio.NewReader(pr).ReadString('\n')
		if line == "ready\n" {
			ready <- nil
			return
		}
		// EOF: it exited (startServing sees that) or closed the pipe
		// without serving.
		ready <- errors.New("it stopped before it served (see the host services log)")
	}()
	return cmd, ready, nil
}

// ServeServicesChild is `runner services child ROOT RUN`, started only by
// SuperviseServices: it serves the run's host services with the lock its
// parent holds (fd 3) and says when it serves (fd 4).
func ServeServicesChild(ctx context.Context, root, run string, o ServicesOptions) error {
	st, log, err := servicesRun(root, run, o)
	if err != nil {
		return err
	}
	lock := os.NewFile(childLockFD, "services.lock")
	ready := os.NewFile(childReadyFD, "ready")
	if lock == nil || ready == nil || !sameFile(lock, st.ServicesLock()) {
		return errors.New("host services: `runner services child` is started by `runner services serve`, not by hand")
	}
	// Neither is for what this process starts.
	unix.CloseOnExec(childLockFD)
	unix.CloseOnExec(childReadyFD)
	o.supervisor = os.Getppid()
	err = serveServices(ctx, st, o, log, func() error {
		_, err := ready.WriteString("ready\n")
		ready.Close()
		return err
	}, func() {})
	lock.Close()
	if os.Getppid() != o.supervisor && len(o.Program) > 0 {
		// Stopped because the supervisor died (Pdeathsig), not by it:
		// start a new one, which starts a new child.
		respawnSupervisor(st, o, log)
	}
	return err
}

// respawnSupervisor starts a new supervisor for the run unless another
// operation holds the run (destroy stops the services itself) or the run
// is gone, and waits until it serves.
func respawnSupervisor(st state.Run, o ServicesOptions, log hclog.Logger) {
	r := &Runner{StateRoot: st.Root, Program: o.Program, Log: log, LockTimeout: servicesStartTimeout}
	ctx, cancel := context.WithTimeout(context.Background(), 2*servicesStartTimeout)
	defer cancel()
	ctx, unlock, err := r.lockRun(ctx, st.Name, "services", "")
	if err != nil {
		log.Warn("the supervisor died; not starting a new one", "reason", err)
		return
	}
	defer unlock()
	if _, err := os.Stat(st.ServicesConfig()); err != nil || findServices(st) != nil {
		return
	}
	h, err := r.startServices(ctx, st)
	if err != nil {
		log.Error("the supervisor died; starting a new one failed", "error", err)
		return
	}
	r.audit(st, "services_revived", st.Name, fmt.Sprintf("pid=%d: the supervisor [pid=%d] was killed; its child started a new one", h.pid, o.supervisor))
}

// sameFile reports whether f is the file at path.
func sameFile(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}
