package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// syscalls calls every syscall number below max with every argument -1,
// each in a child process of its own (some calls end, block or fork their
// caller), and reports each number's outcome: "errno N" (0 = it returned
// without an error), or "no answer" when the child ended or hung first. Run
// under two seccomp profiles with the same capabilities, the two reports
// show which numbers each profile refuses (EPERM where the other does not).
func syscalls(max int) map[int]string {
	out := make(map[int]string, max)
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for n := 0; n < max; n++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(n int) {
			defer wg.Done()
			defer func() { <-sem }()
			r := syscallChild(n)
			mu.Lock()
			out[n] = r
			mu.Unlock()
		}(n)
	}
	wg.Wait()
	return out
}

func syscallChild(n int) string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	self, err := os.Executable()
	if err != nil {
		return err.Error()
	}
	cmd := exec.CommandContext(ctx, self, "syscall1", strconv.Itoa(n))
	// fork and vfork leave a copy of the child running the probe's code;
	// kill its whole process group, and stop waiting for output that a
	// stuck copy still holds open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 500 * time.Millisecond
	b, err := cmd.Output()
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	first, _, _ := strings.Cut(string(b), "\n")
	if first == "" {
		var ee *exec.ExitError
		if errors.As(err, &ee) || ctx.Err() != nil {
			return "no answer"
		}
		return "no answer: " + errString(err)
	}
	return "errno " + first
}

// syscall1 makes one call and prints its errno (0 if none), before anything
// else can go wrong in a process the call may have damaged.
func syscall1(n int) {
	const m = ^uintptr(0)
	_, _, e := unix.RawSyscall6(uintptr(n), m, m, m, m, m, m)
	os.Stdout.WriteString(strconv.Itoa(int(e)) + "\n")
	os.Exit(0)
}
