package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// One operation at a time per run, as Terraform's state lock: apply,
// destroy, run and fetch of a run take its lock, an flock on
// STATE/runs/.RUN.lock that names the holder (pid, operation, agents
// file, since). A second operation fails at once with the holder's
// details, or, with Runner.LockTimeout (the CLI's -lock-timeout), waits up
// to that long. The kernel drops the lock when its process exits, so a
// killed holder leaves nothing to unlock by hand. The host-services
// process never inherits it (its fd is close-on-exec).

// LockInfo is what a run's lock says of its holder.
type LockInfo struct {
	PID       int       `json:"pid"`
	Operation string    `json:"operation"` // apply, destroy, run, fetch
	File      string    `json:"file,omitempty"`
	Since     time.Time `json:"since"`
}

func (i LockInfo) String() string {
	if i.PID == 0 {
		return "a runner process that is starting"
	}
	cmd := "runner " + i.Operation
	if i.File != "" {
		cmd += " " + i.File
	}
	return fmt.Sprintf("pid %d (%s) since %s, %s ago", i.PID, cmd, i.Since.Local().Format("15:04:05"), time.Since(i.Since).Round(time.Second))
}

// ErrLocked is matched (errors.Is) by the error of an operation that did
// not get its run's lock.
var ErrLocked = errors.New("run is locked by another operation")

// LockedError is that error, with the holder.
type LockedError struct {
	Run    string
	Holder LockInfo
	Waited time.Duration // the LockTimeout that expired (0: did not wait)
}

func (e *LockedError) Error() string {
	waited := ""
	if e.Waited > 0 {
		waited = fmt.Sprintf(" (waited %s)", e.Waited)
	}
	return fmt.Sprintf("run %q is locked by %s%s: another operation on this run is in progress; wait for it to finish, or give -lock-timeout DURATION to wait for it (nothing to unlock by hand: the lock goes with its process)",
		e.Run, e.Holder, waited)
}

func (e *LockedError) Is(target error) bool { return target == ErrLocked }

type runLockKey struct{ path string }

// lockRun takes the run's lock for op, or returns ctx as it is if ctx
// already carries it (RunJob's apply and destroy). The returned context
// says it is held; unlock releases it.
func (r *Runner) lockRun(ctx context.Context, run, op, file string) (context.Context, func(), error) {
	st, err := r.runState(run)
	if err != nil {
		return ctx, nil, err
	}
	dir := filepath.Join(st.Root, "runs")
	path := filepath.Join(dir, "."+run+".lock")
	key := runLockKey{path}
	if ctx.Value(key) != nil {
		return ctx, func() {}, nil
	}
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return ctx, nil, fmt.Errorf("creating state directory %s: %w (set RUNNER_STATE_DIR to a writable place)", dir, err)
	}
	var deadline time.Time
	if r.LockTimeout > 0 {
		deadline = time.Now().Add(r.LockTimeout)
	}
	told := false
	for {
		f, holder, err := tryLock(path)
		if err != nil {
			return ctx, nil, err
		}
		if f != nil {
			info := LockInfo{PID: os.Getpid(), Operation: op, File: file, Since: time.Now().UTC()}
			b, _ := json.Marshal(info)
			f.Truncate(0)
			f.WriteAt(append(b, '\n'), 0)
			return context.WithValue(ctx, key, true), func() {
				os.Remove(path)
				f.Close()
			}, nil
		}
		if deadline.IsZero() && holder.Operation == "services" {
			// A command or a services child starting the host services
			// again: short, and not the operator's, so always waited for.
			deadline = time.Now().Add(2 * servicesStartTimeout)
		}
		if deadline.IsZero() || time.Now().After(deadline) {
			return ctx, nil, &LockedError{Run: run, Holder: holder, Waited: r.LockTimeout}
		}
		if !told {
			r.progress("run %q is locked by %s; waiting up to %s for it...", run, holder, time.Until(deadline).Round(time.Second))
			told = true
		}
		select {
		case <-ctx.Done():
			return ctx, nil, fmt.Errorf("waiting for run %q's lock (held by %s): %w", run, holder, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// tryLock takes the lock at path without waiting. If another holds it, f is
// nil and holder says who. The file is removed on release, so a lock
// taken on a file that was removed meanwhile is let go and tried again.
func tryLock(path string) (f *os.File, holder LockInfo, err error) {
	for {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return nil, LockInfo{}, fmt.Errorf("run lock %s: %w", path, err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			defer f.Close()
			if !errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, LockInfo{}, fmt.Errorf("run lock %s: %w", path, err)
			}
			var info LockInfo
			if b, err := os.ReadFile(path); err == nil {
				json.Unmarshal(b, &info)
			}
			return nil, info, nil
		}
		var a, b syscall.Stat_t
		if syscall.Fstat(int(f.Fd()), &a) == nil && syscall.Stat(path, &b) == nil && a.Ino == b.Ino && a.Dev == b.Dev {
			return f, LockInfo{}, nil
		}
		f.Close()
	}
}
