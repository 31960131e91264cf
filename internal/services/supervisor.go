// Package services supervises the components of a run's host-services
// process (the relay, the transcript recorder, the egress proxy): each runs
// in its own goroutine, one that fails is started again after a backoff
// that doubles with each failure in a row, and one that keeps failing is
// reported, and still retried, so a run never silently loses a service.
// The process itself, and who starts it, is the runner package's business.
package services

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"
)

// Service is one component. C is the configuration every component of the
// process is given (each reads its own part).
type Service[C any] interface {
	// Name is short and stable: it names the component in logs, the
	// audit log and status.
	Name() string
	// Run serves until ctx ends, then returns nil. Any return before that
	// is a failure: the supervisor runs it again.
	Run(ctx context.Context) error
	// Reload applies a new configuration, in place or by restarting what
	// it must, and returns once it is in effect. It is called before the
	// first Run and while Run runs, never concurrently with itself.
	Reload(ctx context.Context, cfg C) error
}

// States of a component.
const (
	Running = "running" // Run is running
	Backoff = "backoff" // it failed and waits to be run again
	Failing = "failing" // it failed FailingAfter times in a row; still retried
	Stopped = "stopped" // the supervisor stopped
)

// Status is what the supervisor knows of one component.
type Status struct {
	Name      string    `json:"name"`
	State     string    `json:"state"`
	Restarts  int       `json:"restarts"`             // runs after the first
	Failures  int       `json:"failures"`             // failures in a row, 0 once it stays up
	LastError string    `json:"last_error,omitempty"` // the last failure, kept after recovery
	Since     time.Time `json:"since"`                // when it entered State
}

// Event is a failure the supervisor saw, for the log and the audit log.
type Event struct {
	Service  string
	Err      error
	Failures int           // in a row, this one included
	Delay    time.Duration // until it is run again
	// Failing is set on the failure that makes it FailingAfter in a row.
	Failing bool
}

// Policy bounds the backoff. The zero value gets the defaults.
type Policy struct {
	MinBackoff time.Duration // after the first failure (default 100ms)
	MaxBackoff time.Duration // at most (default 30s)
	// Healthy is how long a run must last for the failures before it to
	// be forgotten (default 30s).
	Healthy time.Duration
	// FailingAfter failures in a row report the component as failing
	// (default 5).
	FailingAfter int
}

func (p Policy) withDefaults() Policy {
	if p.MinBackoff <= 0 {
		p.MinBackoff = 100 * time.Millisecond
	}
	if p.MaxBackoff < p.MinBackoff {
		p.MaxBackoff = max(30*time.Second, p.MinBackoff)
	}
	if p.Healthy <= 0 {
		p.Healthy = 30 * time.Second
	}
	if p.FailingAfter <= 0 {
		p.FailingAfter = 5
	}
	return p
}

// delay is the wait after the n-th failure in a row (n >= 1).
func (p Policy) delay(n int) time.Duration {
	d := p.MinBackoff
	for i := 1; i < n && d < p.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, p.MaxBackoff)
}

// Supervisor runs a fixed set of components.
type Supervisor[C any] struct {
	policy Policy
	notify func(Event)
	svcs   []Service[C]

	mu     sync.Mutex
	status []Status
	reload sync.Mutex // one Reload at a time
}

// New supervises svcs; notify, if set, hears of every failure (from the
// component's goroutine: it must not block for long).
func New[C any](p Policy, notify func(Event), svcs ...Service[C]) *Supervisor[C] {
	s := &Supervisor[C]{policy: p.withDefaults(), notify: notify, svcs: svcs, status: make([]Status, len(svcs))}
	for i, svc := range svcs {
		s.status[i] = Status{Name: svc.Name(), State: Stopped}
	}
	return s
}

// Run runs every component until ctx ends, then waits until all of them
// have returned.
func (s *Supervisor[C]) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := range s.svcs {
		wg.Go(func() { s.keep(ctx, i) })
	}
	wg.Wait()
}

// keep runs component i again and again until ctx ends.
func (s *Supervisor[C]) keep(ctx context.Context, i int) {
	svc := s.svcs[i]
	defer s.set(i, func(st *Status) { st.State = Stopped })
	for run := 0; ctx.Err() == nil; run++ {
		start := time.Now()
		s.set(i, func(st *Status) {
			st.State, st.Since = Running, start
			if run > 0 {
				st.Restarts++
			}
		})
		err := runSafely(ctx, svc)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("it returned before it was stopped")
		}
		var ev Event
		s.set(i, func(st *Status) {
			if time.Since(start) >= s.policy.Healthy {
				st.Failures = 0
			}
			st.Failures++
			st.LastError = err.Error()
			ev = Event{Service: svc.Name(), Err: err, Failures: st.Failures, Delay: s.policy.delay(st.Failures),
				Failing: st.Failures == s.policy.FailingAfter}
			st.State, st.Since = Backoff, time.Now()
			if st.Failures >= s.policy.FailingAfter {
				st.State = Failing
			}
		})
		if s.notify != nil {
			s.notify(ev)
		}
		t := time.NewTimer(ev.Delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// runSafely is svc.Run with a panic turned into an error, so that one
// component's bug restarts that component, not the process.
func runSafely[C any](ctx context.Context, svc Service[C]) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return svc.Run(ctx)
}

func (s *Supervisor[C]) set(i int, f func(*Status)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.status[i])
}

// Reload gives cfg to every component, one after the other, and returns
// their errors, each prefixed by its component's name.
func (s *Supervisor[C]) Reload(ctx context.Context, cfg C) error {
	s.reload.Lock()
	defer s.reload.Unlock()
	var errs []error
	for _, svc := range s.svcs {
		if err := svc.Reload(ctx, cfg); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", svc.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// Status is every component's status, in the order given to New.
func (s *Supervisor[C]) Status() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Status(nil), s.status...)
}
