package services

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fake fails its first `fail` runs (after recording the time of each),
// then serves until stopped.
type fake struct {
	name     string
	fail     int          // runs that fail
	panics   bool         // fail by panicking
	runs     atomic.Int32 // Run calls
	live     atomic.Int32 // Run calls not yet returned
	mu       sync.Mutex
	starts   []time.Time
	reloaded []string
}

func (f *fake) Name() string { return f.name }

func (f *fake) Run(ctx context.Context) error {
	n := f.runs.Add(1)
	f.live.Add(1)
	defer f.live.Add(-1)
	f.mu.Lock()
	f.starts = append(f.starts, time.Now())
	f.mu.Unlock()
	if int(n) <= f.fail {
		if f.panics {
			panic("boom")
		}
		return errors.New("broken")
	}
	<-ctx.Done()
	return nil
}

func (f *fake) Reload(_ context.Context, cfg string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reloaded = append(f.reloaded, cfg)
	if cfg == "bad" {
		return errors.New("cannot")
	}
	return nil
}

// events collects what the supervisor notifies.
type events struct {
	mu sync.Mutex
	ev []Event
}

func (e *events) add(ev Event) { e.mu.Lock(); e.ev = append(e.ev, ev); e.mu.Unlock() }
func (e *events) get() []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Event(nil), e.ev...)
}

// waitFor polls cond (no timing is asserted: the deadline only ends a hung test).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
	}
}

func start(t *testing.T, p Policy, ev *events, svcs ...Service[string]) (*Supervisor[string], func()) {
	s := New(p, ev.add, svcs...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return s, stop
}

func TestFailingComponentRestartsWithBackoffAlone(t *testing.T) {
	flaky := &fake{name: "flaky", fail: 3}
	steady := &fake{name: "steady"}
	ev := &events{}
	p := Policy{MinBackoff: 5 * time.Millisecond, MaxBackoff: time.Second, FailingAfter: 10}
	s, _ := start(t, p, ev, steady, flaky)
	waitFor(t, "flaky serving after 3 failures", func() bool { return flaky.runs.Load() == 4 && flaky.live.Load() == 1 })

	if n := steady.runs.Load(); n != 1 {
		t.Errorf("steady ran %d times while flaky failed: a failure restarted another component", n)
	}
	got := ev.get()
	if len(got) != 3 {
		t.Fatalf("%d events, want 3: %+v", len(got), got)
	}
	for i, e := range got {
		want := p.MinBackoff << i // 5, 10, 20ms: doubling
		if e.Service != "flaky" || e.Failures != i+1 || e.Delay != want || e.Err == nil || e.Err.Error() != "broken" || e.Failing {
			t.Errorf("event %d: %+v, want flaky failure %d with delay %s", i, e, i+1, want)
		}
	}
	// Each run started no sooner than the backoff before it.
	flaky.mu.Lock()
	for i := 1; i < len(flaky.starts); i++ {
		if gap := flaky.starts[i].Sub(flaky.starts[i-1]); gap < got[i-1].Delay {
			t.Errorf("run %d started %s after the one before, under its backoff %s", i+1, gap, got[i-1].Delay)
		}
	}
	flaky.mu.Unlock()
	st := s.Status()
	if st[1].Name != "flaky" || st[1].State != Running || st[1].Restarts != 3 || st[1].LastError != "broken" {
		t.Errorf("flaky status %+v", st[1])
	}
	if st[0].Name != "steady" || st[0].State != Running || st[0].Restarts != 0 || st[0].LastError != "" {
		t.Errorf("steady status %+v", st[0])
	}
}

func TestKeepsFailingIsReportedAndStillRetried(t *testing.T) {
	broken := &fake{name: "broken", fail: 1 << 30}
	ev := &events{}
	s, _ := start(t, Policy{MinBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond, FailingAfter: 4}, ev, broken)
	waitFor(t, "six failures", func() bool { return len(ev.get()) >= 6 })
	got := ev.get()
	for i, e := range got[:6] {
		if e.Failing != (i == 3) {
			t.Errorf("failure %d: failing=%v; want it reported once, on the 4th", i+1, e.Failing)
		}
		if e.Delay > 4*time.Millisecond {
			t.Errorf("failure %d: delay %s over the maximum", i+1, e.Delay)
		}
	}
	waitFor(t, "status failing", func() bool {
		st := s.Status()[0]
		return st.State == Failing && st.Failures >= 4 && st.LastError == "broken"
	})
}

func TestPanicIsAFailure(t *testing.T) {
	p := &fake{name: "p", fail: 1, panics: true}
	ev := &events{}
	start(t, Policy{MinBackoff: time.Millisecond}, ev, p)
	waitFor(t, "restarted after the panic", func() bool { return p.runs.Load() == 2 && p.live.Load() == 1 })
	if e := ev.get(); len(e) != 1 || !strings.HasPrefix(e[0].Err.Error(), "panic: boom") {
		t.Errorf("events %+v", e)
	}
}

func TestStopStopsAll(t *testing.T) {
	a, b := &fake{name: "a"}, &fake{name: "b"}
	broken := &fake{name: "broken", fail: 1 << 30}
	ev := &events{}
	// broken waits an hour after its first failure: stop must not wait for it.
	s, stop := start(t, Policy{MinBackoff: time.Hour}, ev, a, b, broken)
	waitFor(t, "all started", func() bool { return a.live.Load() == 1 && b.live.Load() == 1 && len(ev.get()) == 1 })
	stop()
	if a.live.Load() != 0 || b.live.Load() != 0 || broken.live.Load() != 0 {
		t.Errorf("Run returned with components running: a=%d b=%d", a.live.Load(), b.live.Load())
	}
	for _, st := range s.Status() {
		if st.State != Stopped {
			t.Errorf("%s is %s after stop", st.Name, st.State)
		}
	}
	if broken.runs.Load() != 1 {
		t.Errorf("broken ran %d times, want 1: restarted after stop", broken.runs.Load())
	}
}

func TestReloadReachesEveryComponent(t *testing.T) {
	a, b := &fake{name: "a"}, &fake{name: "b"}
	s := New[string](Policy{}, nil, a, b)
	if err := s.Reload(context.Background(), "v2"); err != nil {
		t.Fatal(err)
	}
	err := s.Reload(context.Background(), "bad")
	if err == nil || !strings.Contains(err.Error(), "a: cannot") || !strings.Contains(err.Error(), "b: cannot") {
		t.Errorf("reload errors: %v", err)
	}
	if strings.Join(a.reloaded, ",") != "v2,bad" || strings.Join(b.reloaded, ",") != "v2,bad" {
		t.Errorf("reloaded a=%v b=%v", a.reloaded, b.reloaded)
	}
}

func TestBackoffDoublesToTheCap(t *testing.T) {
	p := Policy{MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}.withDefaults()
	var got []string
	for n := 1; n <= 6; n++ {
		got = append(got, p.delay(n).String())
	}
	if s := strings.Join(got, " "); s != "100ms 200ms 400ms 800ms 1s 1s" {
		t.Errorf("delays %s", s)
	}
}
