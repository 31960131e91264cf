package shim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestReaper runs reaperHelper in a subprocess that is a child subreaper, as
// PID 1 would be: orphans come back to it.
func TestReaper(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "reaper-helper")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("reaper helper: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// reaperHelper creates orphans while, concurrently, commands run through the
// reaper whose exit statuses must reach their own Wait. Returns 0 if all is
// well, printing "OK ...".
func reaperHelper() int {
	fail := func(format string, a ...any) int { fmt.Printf("FAIL "+format+"\n", a...); return 1 }
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fail("prctl: %v", err)
	}
	self, err := os.Executable()
	if err != nil {
		return fail("%v", err)
	}
	r := NewReaper()
	var mu sync.Mutex
	reaped := map[int]bool{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Loop(ctx, func(z Reaped) { mu.Lock(); reaped[z.PID] = true; mu.Unlock() })

	const n = 30
	var wg sync.WaitGroup
	var orphans []int
	errs := make(chan string, 4*n)
	for i := 0; i < n; i++ {
		wg.Add(2)
		go func() { // makes two orphans and exits 5
			defer wg.Done()
			var buf bytes.Buffer
			// Each orphan waits until it is one before it exits: a child
			// that exited first, sh (dash) reaps itself before its next fork.
			cmd := exec.Command("/bin/sh", "-c", `"$0" orphan $$ 50ms & echo $!; "$0" orphan $$ 200ms & echo $!; exit 5`, self)
			cmd.Stdout = &buf
			err := r.Run(cmd)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 5 {
				errs <- fmt.Sprintf("orphan maker: err = %v, want exit status 5", err)
				return
			}
			mu.Lock()
			for _, f := range strings.Fields(buf.String()) {
				p, _ := strconv.Atoi(f)
				orphans = append(orphans, p)
			}
			mu.Unlock()
		}()
		go func() { // a plain managed command: its status must not be stolen
			defer wg.Done()
			err := r.Run(exec.Command("/bin/sh", "-c", "exit 7"))
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 7 {
				errs <- fmt.Sprintf("managed command: err = %v, want exit status 7", err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		return fail("%s", e)
	}
	if len(orphans) != 2*n {
		return fail("got %d orphan pids, want %d", len(orphans), 2*n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		missing := 0
		for _, p := range orphans {
			if !reaped[p] {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fail("%d of %d orphans never reaped", missing, len(orphans))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if pid, err := peekZombie(); pid != 0 {
		return fail("zombie %d left (%v)", pid, err)
	}
	fmt.Printf("OK reaped %d orphans; %d managed commands kept their exit status\n", len(orphans), 2*n)
	return 0
}

// orphan waits until its parent (pid parent) has exited and it was
// re-parented, then for d, and exits 0.
func orphan(parent int, d time.Duration) int {
	for os.Getppid() == parent {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(d)
	return 0
}
