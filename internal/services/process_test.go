package services

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The test binary is also the kept child: with RUNNER_TEST_CHILD set it
// says ready on fd 3 (or not, for "fail") and waits to be killed.
func TestMain(m *testing.M) {
	switch os.Getenv("RUNNER_TEST_CHILD") {
	case "":
		os.Exit(m.Run())
	case "fail":
		os.Exit(3)
	case "wedge": // never says it serves
		time.Sleep(time.Hour)
		os.Exit(0)
	default:
		f := os.NewFile(3, "ready")
		f.WriteString("ready\n")
		f.Close()
		time.Sleep(time.Hour) // (select{} can end as a deadlock)
		os.Exit(0)
	}
}

func childStarter(t *testing.T, mode func() string) func() (*exec.Cmd, <-chan error, error) {
	return func() (*exec.Cmd, <-chan error, error) {
		pr, pw, err := os.Pipe()
		if err != nil {
			return nil, nil, err
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "RUNNER_TEST_CHILD="+mode())
		cmd.ExtraFiles = []*os.File{pw}
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		err = cmd.Start()
		pw.Close()
		if err != nil {
			return nil, nil, err
		}
		ready := make(chan error, 1)
		go func() {
			b := make([]byte, 6)
			n, _ := pr.Read(b)
			pr.Close()
			if string(b[:n]) == "ready\n" {
				ready <- nil
			} else {
				ready <- errors.New("not ready")
			}
		}()
		return cmd, ready, nil
	}
}

// A child killed with SIGKILL is started again, and each restart is told
// with the old and new pid and how the old one ended; when ctx ends the
// child is stopped and Run returns.
func TestProcessRestartsAKilledChild(t *testing.T) {
	got := make(chan Restart, 100)
	first := make(chan int, 1)
	p := Process{
		Policy:    Policy{MinBackoff: 10 * time.Millisecond, Healthy: time.Hour},
		Start:     childStarter(t, func() string { return "serve" }),
		Restarted: func(r Restart) { got <- r },
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, func(pid int) { first <- pid }) }()
	pid := <-first
	for i := 0; i < 3; i++ {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		r := <-got
		if r.OldPID != pid || r.NewPID == 0 || r.NewPID == pid || r.Err != nil || r.Exit != "signal: killed" || r.Failures != i+1 {
			t.Fatalf("restart %d: %+v (killed %d)", i, r, pid)
		}
		if i == 0 && r.Delay != 0 {
			t.Errorf("the first restart waited %s, want none", r.Delay)
		}
		if i > 0 && r.Delay < 10*time.Millisecond {
			t.Errorf("restart %d in a row waited %s, want a backoff", i+1, r.Delay)
		}
		pid = r.NewPID
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if syscall.Kill(pid, 0) == nil {
		t.Errorf("child %d still runs after Run returned", pid)
	}
}

// A child that cannot serve at the first start is Run's error: nothing is
// kept running.
func TestProcessFirstStartFails(t *testing.T) {
	p := Process{Start: childStarter(t, func() string { return "fail" })}
	err := p.Run(context.Background(), func(int) { t.Error("ready called") })
	if err == nil {
		t.Fatal("Run succeeded with a child that exits at once")
	}
}

// A child wedged before it serves is killed after ServeTimeout and is a
// failure, not a wait forever.
func TestProcessKillsAChildThatNeverServes(t *testing.T) {
	var pid int
	start := childStarter(t, func() string { return "wedge" })
	p := Process{ServeTimeout: 200 * time.Millisecond, Start: func() (*exec.Cmd, <-chan error, error) {
		cmd, ready, err := start()
		if cmd != nil && cmd.Process != nil {
			pid = cmd.Process.Pid
		}
		return cmd, ready, err
	}}
	err := p.Run(context.Background(), func(int) { t.Error("ready called") })
	if err == nil || !strings.Contains(err.Error(), "did not serve within") {
		t.Fatalf("Run = %v, want the serve timeout", err)
	}
	if pid == 0 || syscall.Kill(pid, 0) == nil {
		t.Errorf("the wedged child %d still runs", pid)
	}
}

// A child that fails to start again is retried, with each failed attempt
// reported, until one serves.
func TestProcessRetriesAFailedRestart(t *testing.T) {
	var mu sync.Mutex
	mode := "serve"
	got := make(chan Restart, 1000)
	first := make(chan int, 1)
	p := Process{
		Policy:    Policy{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Healthy: time.Hour},
		Start:     childStarter(t, func() string { mu.Lock(); defer mu.Unlock(); return mode }),
		Restarted: func(r Restart) { got <- r },
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, func(pid int) { first <- pid }) }()
	pid := <-first
	mu.Lock()
	mode = "fail"
	mu.Unlock()
	syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 2; i++ {
		if r := <-got; r.Err == nil {
			t.Fatalf("attempt %d with a failing child: %+v", i, r)
		}
	}
	mu.Lock()
	mode = "serve"
	mu.Unlock()
	for {
		r := <-got
		if r.Err == nil && r.NewPID != 0 {
			break
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
