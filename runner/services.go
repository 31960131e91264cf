package runner

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runner-dev/runner/internal/services"
	"github.com/runner-dev/runner/internal/state"
)

// A run's host services (the relay, the transcript recorder, and the egress
// proxy) live in one process per run on the host: `runner services serve
// ROOT RUN`, started by apply in its own session so it outlives the CLI,
// stopped by destroy. It is a supervisor that keeps a child serving them
// (serviceskeep.go): a child killed outright is started again at once.
// Inside the child another supervisor (internal/services) restarts a
// component that fails. If the supervisor itself is killed, the next
// runner command that needs it (apply, send, inbox, status: see
// operatorClient) starts it again. servicesHandle is the supervisor seen
// from a command; it is the only code that starts, finds, reloads or stops
// it.
type servicesHandle struct {
	st  state.Run
	pid int
	// started is the process's start time (/proc/PID/stat, clock ticks
	// since boot): with the pid it names one process, never a later one
	// that reused the pid.
	started uint64
}

// servicesStartTimeout bounds how long a command waits for a new process
// to serve.
const servicesStartTimeout = 10 * time.Second

// findServices returns the run's running host-services process, or nil. It
// is running only if its lock is held, and its pid file names a live
// process with the start time recorded there.
func findServices(st state.Run) *servicesHandle {
	if !lockHeld(st.ServicesLock()) {
		return nil
	}
	b, err := os.ReadFile(st.ServicesPID())
	if err != nil {
		return nil
	}
	var h servicesHandle
	if n, _ := fmt.Sscan(string(b), &h.pid, &h.started); n != 2 || h.pid <= 0 {
		return nil
	}
	if t, err := procStartTime(h.pid); err != nil || t != h.started {
		return nil
	}
	h.st = st
	return &h
}

// alive reports whether the process is still the one the handle names.
func (h *servicesHandle) alive() bool {
	t, err := procStartTime(h.pid)
	return err == nil && t == h.started
}

// procStartTime is field 22 of /proc/PID/stat. The command name (field 2)
// may hold spaces and parentheses, so fields are counted after its last ')'.
func procStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b)[i+1:])
	if i < 0 || len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	if f[0] == "Z" || f[0] == "X" { // dead, not yet reaped
		return 0, fmt.Errorf("process %d has exited", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// lockHeld reports whether some process holds an OFD write lock on path,
// without taking it (F_OFD_GETLK), so asking never gets in the way of a
// process that is starting.
func lockHeld(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk); err != nil {
		return false
	}
	return lk.Type != unix.F_UNLCK
}

// startServices starts the run's host-services process and waits until its
// relay answers. Apply has written its configuration (relay.json,
// services.json). If another command started one meanwhile, that one is
// returned.
func (r *Runner) startServices(ctx context.Context, st state.Run) (*servicesHandle, error) {
	prog, err := r.program()
	if err != nil {
		return nil, err
	}
	argv := append(append([]string(nil), prog...), "services", "serve", st.Root, st.Name)
	logf, err := os.OpenFile(st.ServicesLog(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the run's host services (%s): %w", strings.Join(argv, " "), err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(servicesStartTimeout)
	for {
		if h := findServices(st); h != nil && r.relayAnswers(ctx, st) {
			r.log().Info("host services started", "run", st.Name, "pid", h.pid, "log", st.ServicesLog())
			return h, nil
		}
		select {
		case err := <-exited:
			// Lost a race with another command's start: use that one.
			if h := r.waitServing(ctx, st); h != nil {
				return h, nil
			}
			return nil, fmt.Errorf("the run's host services exited at start (%v): %s", err, tail(st.ServicesLog(), 10))
		case <-deadline:
			return nil, fmt.Errorf("the run's host services did not serve within %s: %s", servicesStartTimeout, tail(st.ServicesLog(), 10))
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitServing waits a little for a process that another command started.
func (r *Runner) waitServing(ctx context.Context, st state.Run) *servicesHandle {
	for i := 0; i < 100 && ctx.Err() == nil; i++ {
		if h := findServices(st); h != nil && r.relayAnswers(ctx, st) {
			return h
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
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

// ensureServices is apply's step: start the run's host services if they are
// not running, and make a running process take up a changed configuration
// (it restarts only what the change concerns: the relay, for its config;
// messages survive in its journal). A process whose relay does not answer
// is replaced.
func (r *Runner) ensureServices(ctx context.Context, st state.Run, changed bool) error {
	h := findServices(st)
	if h != nil && !r.relayAnswers(ctx, st) && !r.answersSoon(ctx, h) {
		r.progress("host services: the relay of [pid=%d] does not answer; restarting the process", h.pid)
		h.stop()
		h = nil
	}
	if h == nil {
		h, err := r.startServices(ctx, st)
		if err != nil {
			return err
		}
		r.progress("host services: running [pid=%d] (%s), the operator's socket at %s", h.pid, servingComponents(st), st.OperatorSocket())
		return nil
	}
	if changed {
		if err := h.reload(ctx); err != nil {
			return fmt.Errorf("reloading the run's host services [pid=%d]: %w (their log: %s)", h.pid, err, st.ServicesLog())
		}
		r.progress("host services: configuration reloaded [pid=%d] (%s)", h.pid, servingComponents(st))
	}
	return nil
}

// answersSoon waits a little for a supervisor that is restarting its
// child.
func (r *Runner) answersSoon(ctx context.Context, h *servicesHandle) bool {
	for i := 0; i < 50 && ctx.Err() == nil && h.alive(); i++ {
		time.Sleep(100 * time.Millisecond)
		if r.relayAnswers(ctx, h.st) {
			return true
		}
	}
	return false
}

// servingComponents names what the process serves for the configuration
// apply wrote: the relay and the recorder always, the egress proxy when
// some agent has egress.
func servingComponents(st state.Run) string {
	s := "relay, recorder"
	if f, err := loadEgressRules(st); err == nil && len(f) > 0 {
		s += fmt.Sprintf(", egress proxy for %s", strings.Join(slices.Sorted(maps.Keys(f)), ", "))
	}
	return s
}

// reviveServices starts the host services of a run that has been applied
// (its configuration is on disk) when no process serves it: one that was
// killed comes back at the next command that needs it. It reports whether
// it started one.
func (r *Runner) reviveServices(ctx context.Context, st state.Run) (bool, error) {
	if _, err := os.Stat(st.ServicesConfig()); err != nil {
		return false, nil
	}
	if h := findServices(st); h != nil {
		return r.answersSoon(ctx, h), nil // its supervisor is restarting the child
	}
	// Not while another operation (apply, destroy, a child starting a new
	// supervisor) has the run: it starts or stops the services itself, and
	// a destroy must not be followed by a process serving a run it has
	// removed. A short one is waited for.
	w := *r
	w.LockTimeout, w.Progress = servicesStartTimeout, nil
	ctx, unlock, err := w.lockRun(ctx, st.Name, "services", "")
	if err != nil {
		return false, nil
	}
	defer unlock()
	if _, err := os.Stat(st.ServicesConfig()); err != nil {
		return false, nil
	}
	if h := findServices(st); h != nil {
		return r.relayAnswers(ctx, st) || r.answersSoon(ctx, h), nil
	}
	h, err := r.startServices(ctx, st)
	if err != nil {
		return false, err
	}
	r.log().Warn("the run's host services were not running; started them again", "run", st.Name, "pid", h.pid)
	r.audit(st, "services_revived", st.Name, fmt.Sprintf("pid=%d: no host-services process was running", h.pid))
	return true, nil
}

// nudgeRecorder makes the running host services look at the run again (the
// recorder starts recording a new container at once).
func (r *Runner) nudgeRecorder(ctx context.Context, st state.Run) {
	if ctx.Err() != nil {
		return // interrupted: the container is removed, or the next apply nudges
	}
	if h := findServices(st); h != nil {
		if err := h.reload(ctx); err != nil {
			r.log().Warn("the run's host services did not take the reload", "pid", h.pid, "error", err)
		}
	}
}

// stopServices stops the run's host-services process, if one runs, and
// waits until it has exited.
func (r *Runner) stopServices(st state.Run) {
	if h := findServices(st); h != nil {
		r.progress("host services: stopping [pid=%d]", h.pid)
		h.stop()
	}
}

// stop asks the process to stop (SIGTERM: the supervisor stops its child,
// which stops every component and removes its sockets), waits until
// neither holds the lock, then kills what is left: the supervisor's whole
// process group, which is it and its child.
func (h *servicesHandle) stop() {
	if !h.alive() {
		return
	}
	leader := false
	if pg, err := unix.Getpgid(h.pid); err == nil && pg == h.pid {
		leader = true // started by startServices in a session of its own
	}
	gone := func() bool { return !h.alive() && !lockHeld(h.st.ServicesLock()) }
	wait := func(n int) {
		for i := 0; i < n && !gone(); i++ {
			time.Sleep(50 * time.Millisecond)
		}
	}
	syscall.Kill(h.pid, syscall.SIGTERM)
	wait(160) // the child has 5s to stop
	if gone() {
		return
	}
	if leader {
		// A process group's id is never reused while one member lives.
		syscall.Kill(-h.pid, syscall.SIGKILL)
	} else if h.alive() {
		syscall.Kill(h.pid, syscall.SIGKILL)
	}
	wait(100)
}

// controlRequest and controlReply are the control socket's protocol: one
// JSON line each way.
type controlRequest struct {
	Op string `json:"op"` // "reload" or "status"
}

type controlReply struct {
	PID int `json:"pid"`
	// Supervisor is the pid of the process that keeps this one running
	// (the one the pid file names), 0 when none does.
	Supervisor int               `json:"supervisor,omitempty"`
	Services   []services.Status `json:"services,omitempty"`
	Error      string            `json:"error,omitempty"`
}

// reload makes the process read its configuration again and apply it
// (relay.json, services.json); it returns once the change is in effect.
func (h *servicesHandle) reload(ctx context.Context) error {
	_, err := h.control(ctx, "reload", 30*time.Second)
	return err
}

// status is what the process's supervisor says of each component.
func (h *servicesHandle) status(ctx context.Context) ([]services.Status, error) {
	rep, err := h.control(ctx, "status", 5*time.Second)
	return rep.Services, err
}

func (h *servicesHandle) control(ctx context.Context, op string, timeout time.Duration) (controlReply, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", h.st.ServicesSocket())
	if err != nil {
		return controlReply{}, err
	}
	defer c.Close()
	dl, _ := ctx.Deadline()
	c.SetDeadline(dl)
	if err := json.NewEncoder(c).Encode(controlRequest{Op: op}); err != nil {
		return controlReply{}, err
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		return controlReply{}, fmt.Errorf("%s: no reply from the host services: %w", op, err)
	}
	var rep controlReply
	if err := json.Unmarshal(line, &rep); err != nil {
		return controlReply{}, fmt.Errorf("%s: bad reply from the host services: %w", op, err)
	}
	if rep.PID != h.pid && rep.Supervisor != h.pid {
		return rep, fmt.Errorf("%s: the control socket is served by pid %d, not %d", op, rep.PID, h.pid)
	}
	if rep.Error != "" {
		return rep, errors.New(rep.Error)
	}
	return rep, nil
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
