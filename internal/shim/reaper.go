package shim

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Reaped is one orphan the reaper collected.
type Reaped struct {
	PID    int
	Status syscall.WaitStatus
}

// Reaper collects zombie children — orphans re-parented to us as PID 1 or as
// a child subreaper — without stealing the exit status of the children this
// process starts and waits for itself.
//
// The protocol: a child we wait for explicitly is started with Start (or
// Run), which registers its pid while holding the lock, so it is known before
// it can possibly exit. A reaping pass holds the same lock and only peeks at
// the next zombie (waitid WNOWAIT); it reaps it with wait4(pid) only if it is
// not registered. If the next zombie is registered, the pass stops: that
// child's own Wait is about to collect it, and Wait triggers a new pass as
// soon as it has. Nothing ever calls wait4(-1), which would race with Wait.
type Reaper struct {
	mu      sync.Mutex
	managed map[int]struct{}
	kick    chan struct{}
}

// NewReaper returns a reaper; call Loop to run it.
func NewReaper() *Reaper {
	return &Reaper{managed: make(map[int]struct{}), kick: make(chan struct{}, 1)}
}

// Start starts cmd and registers it; its status is left for Wait.
func (r *Reaper) Start(cmd *exec.Cmd) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return err
	}
	r.managed[cmd.Process.Pid] = struct{}{}
	return nil
}

// Wait waits for a command started with Start and unregisters it.
func (r *Reaper) Wait(cmd *exec.Cmd) error {
	err := cmd.Wait()
	r.mu.Lock()
	delete(r.managed, cmd.Process.Pid)
	r.mu.Unlock()
	r.Kick()
	return err
}

// Run is Start then Wait; it has the signature Tmux.Run wants.
func (r *Reaper) Run(cmd *exec.Cmd) error {
	if err := r.Start(cmd); err != nil {
		return err
	}
	return r.Wait(cmd)
}

// Kick asks the loop for a reaping pass.
func (r *Reaper) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Reap collects every zombie child that is not registered and returns them.
// It never blocks.
func (r *Reaper) Reap() []Reaped {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Reaped
	for {
		pid, err := peekZombie()
		if err != nil || pid <= 0 {
			return out // ECHILD (no children) or no zombie yet
		}
		if _, ok := r.managed[pid]; ok {
			return out // its owner's Wait collects it, then kicks us
		}
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || got != pid {
			return out
		}
		out = append(out, Reaped{PID: pid, Status: ws})
	}
}

// Loop reaps on every SIGCHLD and every Kick until ctx is done, passing each
// reaped orphan to onReap (which may be nil).
func (r *Reaper) Loop(ctx context.Context, onReap func(Reaped)) {
	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, syscall.SIGCHLD)
	defer signal.Stop(sigchld)
	for {
		for _, z := range r.Reap() {
			if onReap != nil {
				onReap(z)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-sigchld:
		case <-r.kick:
		}
	}
}

// siginfoPidOffset is where si_pid sits in siginfo_t: after three ints, at the
// start of the union, which is pointer-aligned (16 on 64-bit, 12 on 32-bit).
var siginfoPidOffset = (12 + unsafe.Sizeof(uintptr(0)) - 1) &^ (unsafe.Sizeof(uintptr(0)) - 1)

// peekZombie returns the pid of a child that has exited, without reaping it,
// or 0 if none has.
func peekZombie() (int, error) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, err
		}
		break
	}
	if info.Signo == 0 { // WNOHANG and nothing exited (the kernel zeroes si_pid)
		return 0, nil
	}
	pid := *(*int32)(unsafe.Add(unsafe.Pointer(&info), siginfoPidOffset))
	return int(pid), nil
}
