package services

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Process keeps one child process running: the host-services process runs
// its components in a child, and a child that dies, even by SIGKILL, is
// started again at once (after a backoff only if it keeps dying). The
// parent does nothing else, so nothing but a deliberate kill stops it.
type Process struct {
	// Policy bounds the backoff between restarts. MinBackoff is the wait
	// after a death that ends a healthy run (default 100ms); Healthy is how
	// long a child must have served for that (default 30s).
	Policy Policy
	// Start starts one child and returns it with a channel that receives
	// nil once it serves, or an error if it cannot (it is then killed).
	// The child must die with its parent (SysProcAttr.Pdeathsig).
	Start func() (*exec.Cmd, <-chan error, error)
	// Restarted hears of every restart: how the last child ended and the
	// pid of the one started in its place.
	Restarted func(Restart)
	// Grace is how long a child has to stop after SIGTERM (default 5s).
	Grace time.Duration
	// ServeTimeout is how long a new child may take to serve (default
	// 60s); one wedged before it serves (say, on a lock) is killed and
	// counts as a failure, so the supervisor never waits on it forever.
	ServeTimeout time.Duration
}

// Restart is one restart of the kept process.
type Restart struct {
	OldPID, NewPID int
	Exit           string        // how the old one ended ("signal: killed")
	Delay          time.Duration // waited before starting the new one
	Failures       int           // deaths in a row without a healthy run, this one included
	Err            error         // the new one did not start or serve (NewPID may be 0)
}

// Run starts the child and waits until it serves; an error then is
// returned at once (a configuration that cannot serve). After that it
// keeps a child running until ctx ends, when it stops the child (SIGTERM,
// then SIGKILL after Grace) and returns nil. ready is called once, when
// the first child serves.
func (p *Process) Run(ctx context.Context, ready func(pid int)) error {
	pol := p.Policy
	if pol.MinBackoff <= 0 {
		pol.MinBackoff = 100 * time.Millisecond
	}
	pol = pol.withDefaults()
	grace := p.Grace
	if grace <= 0 {
		grace = 5 * time.Second
	}
	cmd, exited, err := p.startServing(ctx)
	if err != nil {
		return err
	}
	if ready != nil {
		ready(cmd.Process.Pid)
	}
	failures := 0
	started := time.Now()
	for {
		select {
		case <-ctx.Done():
			stopChild(cmd, exited, grace)
			return nil
		case werr := <-exited:
			if time.Since(started) >= pol.Healthy {
				failures = 0
			}
			failures++
			ev := Restart{OldPID: cmd.Process.Pid, Exit: exitText(werr), Failures: failures}
			if failures > 1 {
				ev.Delay = pol.delay(failures - 1)
			}
			if sleepCtx(ctx, ev.Delay) != nil {
				return nil
			}
			var next *exec.Cmd
			next, exited, ev.Err = p.startServing(ctx)
			if ctx.Err() != nil && ev.Err != nil {
				return nil
			}
			if next != nil {
				ev.NewPID = next.Process.Pid
				cmd = next
			} else {
				// Nothing runs: the next round starts one after a longer wait.
				exited = closedErr(ev.Err)
				cmd = &exec.Cmd{Process: &os.Process{Pid: 0}}
			}
			started = time.Now()
			if p.Restarted != nil {
				p.Restarted(ev)
			}
		}
	}
}

// startServing starts a child and waits until it serves or exits. On
// success the returned channel receives the child's Wait result.
func (p *Process) startServing(ctx context.Context) (*exec.Cmd, <-chan error, error) {
	cmd, serving, err := p.Start()
	if err != nil {
		return nil, nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	timeout := p.ServeTimeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	wedged := time.NewTimer(timeout)
	defer wedged.Stop()
	select {
	case <-wedged.C:
		cmd.Process.Kill()
		<-exited
		return nil, nil, fmt.Errorf("it did not serve within %s; killed", timeout)
	case err := <-serving:
		if err == nil {
			return cmd, exited, nil
		}
		cmd.Process.Kill()
		<-exited
		return nil, nil, err
	case werr := <-exited:
		return nil, nil, fmt.Errorf("it exited before it served (%s)", exitText(werr))
	case <-ctx.Done():
		stopChild(cmd, exited, 5*time.Second)
		return nil, nil, ctx.Err()
	}
}

func stopChild(cmd *exec.Cmd, exited <-chan error, grace time.Duration) {
	if cmd.Process == nil || cmd.Process.Pid == 0 {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(grace):
		cmd.Process.Kill()
		<-exited
	}
}

func closedErr(err error) <-chan error {
	c := make(chan error, 1)
	c <- err
	return c
}

func exitText(err error) string {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return "exit status 0"
	case errors.As(err, &ee):
		return ee.ProcessState.String()
	default:
		return err.Error()
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
