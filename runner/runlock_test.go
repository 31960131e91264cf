package runner

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A second operation on a run fails at once naming the holder (pid,
// command, since), or waits with LockTimeout; the holder's own nested
// operations (RunJob's apply and destroy) pass; the lock file goes with
// the lock.
func TestRunLockNamesTheHolder(t *testing.T) {
	root := t.TempDir()
	r := &Runner{StateRoot: root}
	ctx := context.Background()
	held, unlock, err := r.lockRun(ctx, "lk", "apply", "agents.hcl")
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = r.lockRun(ctx, "lk", "destroy", "")
	var le *LockedError
	if !errors.As(err, &le) || !errors.Is(err, ErrLocked) {
		t.Fatalf("second lock: %v, want a LockedError", err)
	}
	if le.Holder.PID != os.Getpid() || le.Holder.Operation != "apply" || le.Holder.File != "agents.hcl" || time.Since(le.Holder.Since) > time.Minute {
		t.Errorf("holder %+v", le.Holder)
	}
	for _, want := range []string{`run "lk" is locked by pid ` + strconv.Itoa(os.Getpid()) + ` (runner apply agents.hcl) since `, "-lock-timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// Nested: the holder's context passes.
	if _, u, err := r.lockRun(held, "lk", "destroy", ""); err != nil {
		t.Errorf("nested lock: %v", err)
	} else {
		u()
	}
	// Another run is not locked by it.
	if _, u, err := r.lockRun(ctx, "other", "apply", ""); err != nil {
		t.Errorf("another run: %v", err)
	} else {
		u()
	}
	// With a timeout the second one waits until the first lets go.
	w := &Runner{StateRoot: root, LockTimeout: 30 * time.Second}
	go func() { time.Sleep(100 * time.Millisecond); unlock() }()
	_, u, err := w.lockRun(ctx, "lk", "destroy", "")
	if err != nil {
		t.Fatalf("waiting for the lock: %v", err)
	}
	u()
	if _, err := os.Stat(filepath.Join(root, "runs", ".lk.lock")); !os.IsNotExist(err) {
		t.Errorf("lock file left after release: %v", err)
	}
	// A timeout that expires names the holder too.
	_, unlock2, _ := r.lockRun(ctx, "lk", "apply", "")
	defer unlock2()
	short := &Runner{StateRoot: root, LockTimeout: 150 * time.Millisecond}
	if _, _, err := short.lockRun(ctx, "lk", "apply", ""); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "waited 150ms") {
		t.Errorf("expired wait: %v", err)
	}
}

// One cause that hits many agents is one line naming them all; different
// causes stay apart.
func TestApplyErrorGroupsOneCause(t *testing.T) {
	var errs []error
	for i := 1; i <= 63; i++ {
		errs = append(errs, &AgentError{Agent: "w-" + strconv.Itoa(i), Err: context.Canceled})
	}
	errs = append(errs, &AgentError{Agent: "x", Err: errors.New("image not found")})
	msg := (&ApplyError{Failed: errs, Total: 64}).Error()
	if n := strings.Count(msg, "context canceled"); n != 1 {
		t.Errorf("%q told %d times, want once:\n%s", "context canceled", n, msg)
	}
	if !strings.Contains(msg, "w-1, w-10, w-11") || !strings.Contains(msg, "(63 agents): context canceled") || !strings.Contains(msg, "\n  - x: image not found") {
		t.Errorf("grouped error:\n%s", msg)
	}
	if n := strings.Count(msg, "\n  - "); n != 2 {
		t.Errorf("%d lines for 2 causes:\n%s", n, msg)
	}
}
