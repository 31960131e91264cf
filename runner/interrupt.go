package runner

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/runner-dev/runner/internal/plan"
	"github.com/runner-dev/runner/internal/state"
)

// Ctrl-C during apply (ctx cancelled): one progress line says what is
// undone; no agent is started after it; an agent being created is removed
// unless it completed (its container is never left half-created: Create
// runs to its end, and whatever fails after it is removed with a context
// of its own); the host services stop if no agent remains; and the error
// is one summary with the agents of each kind listed once, not an error
// per agent. A later apply converges.

// errNotStarted is the error of an agent whose action never began.
var errNotStarted = errors.New("not started: apply was interrupted")

// applyTracker knows which agents' actions are under way, for the line
// printed when apply is interrupted.
type applyTracker struct {
	mu      sync.Mutex
	pending map[string]bool // queued, not begun
	working map[string]bool // being created, replaced or deleted
	done    int
	// wasWorking is working when the interrupt came.
	wasWorking map[string]bool
}

func newApplyTracker() *applyTracker {
	return &applyTracker{pending: map[string]bool{}, working: map[string]bool{}}
}

func (t *applyTracker) queue(agent string) {
	t.mu.Lock()
	t.pending[agent] = true
	t.mu.Unlock()
}

func (t *applyTracker) begin(agent string) {
	t.mu.Lock()
	delete(t.pending, agent)
	t.working[agent] = true
	t.mu.Unlock()
}

func (t *applyTracker) end(agent string) {
	t.mu.Lock()
	delete(t.pending, agent)
	delete(t.working, agent)
	t.done++
	t.mu.Unlock()
}

// line is the one line printed at the interrupt.
func (t *applyTracker) line(cause error) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.wasWorking = maps.Clone(t.working)
	why := "interrupted"
	if cause != nil && cause != context.Canceled {
		why = cause.Error()
	}
	if len(t.working)+len(t.pending)+t.done == 0 {
		return fmt.Sprintf("Interrupt (%s): stopping apply before any container is changed.", why)
	}
	var parts []string
	if n := len(t.working); n > 0 {
		parts = append(parts, fmt.Sprintf("undoing the %s being created (%s): each is removed unless it completes",
			agentsN(n), strings.Join(slices.Sorted(maps.Keys(t.working)), ", ")))
	}
	if n := len(t.pending); n > 0 {
		parts = append(parts, fmt.Sprintf("%s not started", agentsN(n)))
	}
	if t.done > 0 {
		parts = append(parts, fmt.Sprintf("%s finished", agentsN(t.done)))
	}
	return fmt.Sprintf("Interrupt (%s): stopping apply; %s.", why, strings.Join(parts, "; "))
}

// wasBusy: the agent was being worked on when the interrupt came (its
// error is the interrupt's doing).
func (t *applyTracker) wasBusy(agent string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.wasWorking[agent]
}

// InterruptedError is Apply's error when ctx ended during it.
type InterruptedError struct {
	Run, File string
	Cause     error
	Applied   []string // agents whose action completed (kept)
	Undone    []string // being created when it came: removed
	NotDone   []string // never begun
	Failed    []error  // other agents' own errors
	Stopped   bool     // the host services were stopped: no agent remains
}

func (e *InterruptedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "apply of run %q interrupted (%v)", e.Run, e.Cause)
	add := func(what string, agents []string) {
		if len(agents) > 0 {
			fmt.Fprintf(&b, "; %s %s (%s)", agentsN(len(agents)), what, strings.Join(agents, ", "))
		}
	}
	add("applied and kept", e.Applied)
	add("being created were removed", e.Undone)
	add("not started", e.NotDone)
	if e.Stopped {
		b.WriteString("; no agent remains, so the host services were stopped")
	}
	fmt.Fprintf(&b, ". Run `runner apply %s` again to finish.", e.File)
	if len(e.Failed) > 0 {
		b.WriteString(" Failed before the interrupt:")
		for _, l := range groupErrors(e.Failed) {
			b.WriteString("\n  - " + l)
		}
	}
	return b.String()
}

func (e *InterruptedError) Unwrap() error { return e.Cause }

// interrupted finishes an apply whose ctx ended: it removes any container
// of the run this apply created and did not complete, stops the host
// services if no container remains, and sums up.
func (r *Runner) interrupted(ctx context.Context, st state.Run, file string, tr *applyTracker, p plan.Plan, res ApplyResult, errs []error) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	e := &InterruptedError{Run: st.Name, File: file, Cause: ctx.Err()}
	if c := context.Cause(ctx); c != nil {
		e.Cause = c
	}
	for a := range res.IDs {
		e.Applied = append(e.Applied, a)
	}
	for _, err := range errs {
		var ae *AgentError
		switch {
		case errors.As(err, &ae) && errors.Is(err, errNotStarted):
			e.NotDone = append(e.NotDone, ae.Agent)
		case errors.As(err, &ae) && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || tr.wasBusy(ae.Agent)):
			e.Undone = append(e.Undone, ae.Agent)
		default:
			e.Failed = append(e.Failed, err)
		}
	}
	known := map[string]bool{}
	for _, id := range res.IDs {
		known[id] = true
	}
	for _, a := range p.Actions {
		for _, c := range a.Existing {
			known[c.ID] = true
		}
	}
	list, err := r.Engine.List(cctx, st.Name)
	if err != nil {
		e.Failed = append(e.Failed, fmt.Errorf("listing the run's containers after the interrupt: %w", err))
	} else {
		remain := 0
		for _, c := range list {
			if known[c.ID] {
				remain++
				continue
			}
			// Created by this apply and not completed.
			if err := r.Engine.Remove(cctx, c.ID); err != nil {
				remain++
				e.Failed = append(e.Failed, &AgentError{Agent: c.Agent, Err: fmt.Errorf("removing its half-created container %s: %w", shortID(c.ID), err)})
			} else if !slices.Contains(e.Undone, c.Agent) {
				e.Undone = append(e.Undone, c.Agent)
			}
		}
		if remain == 0 && findServices(st) != nil {
			r.stopServices(st)
			e.Stopped = true
		}
	}
	for _, s := range [][]string{e.Applied, e.Undone, e.NotDone} {
		sort.Strings(s)
	}
	return e
}

// stopIfNothingRuns is for an apply interrupted before its actions: if the
// run has no container, its host services stop.
func (r *Runner) stopIfNothingRuns(ctx context.Context, run string) {
	if ctx.Err() == nil {
		return
	}
	st, err := r.runState(run)
	if err != nil || findServices(st) == nil {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if list, err := r.Engine.List(cctx, run); err == nil && len(list) == 0 {
		r.stopServices(st)
	}
}

// groupErrors is one line per cause: agents that failed with the same
// error are listed together ("a, b, c: context canceled"), so one cause
// that hits many agents is told once.
func groupErrors(errs []error) []string {
	var order []string
	by := map[string][]string{}
	for _, err := range errs {
		var ae *AgentError
		msg, who := err.Error(), ""
		if errors.As(err, &ae) && ae.Err != nil {
			msg, who = ae.Err.Error(), ae.Agent
		}
		if _, ok := by[msg]; !ok {
			order = append(order, msg)
		}
		by[msg] = append(by[msg], who)
	}
	var out []string
	for _, msg := range order {
		who := slices.DeleteFunc(by[msg], func(s string) bool { return s == "" })
		sort.Strings(who)
		line := strings.ReplaceAll(msg, "\n", "\n    ")
		switch {
		case len(who) == 0:
		case len(who) == 1:
			line = who[0] + ": " + line
		default:
			line = fmt.Sprintf("%s (%d agents): %s", strings.Join(who, ", "), len(who), line)
		}
		out = append(out, line)
	}
	return out
}
