package relay

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runner-dev/runner/internal/audit"
)

// Group commit. Every request that changes the journal or must be audited
// becomes an op. One goroutine, the committer, takes every op queued while
// the previous commit ran and commits them together: their journal records
// with one write and (if any needs it) one fsync, their audit events with one
// AppendBatch (one fsync), the two syncs at once. Only then is each op's
// outcome applied to the state (a message becomes deliverable) and its
// requester answered. So every "ok" still means the message and its audit
// line are on disk, and every decision is recorded before it is acted on or
// answered, while the disk sees two fsyncs per batch instead of three per
// message.
//
// The committer is the only writer of the journal while Serve runs. Ops are
// queued in the order their ids were assigned (under s.mu), so the journal and
// every recipient's queue stay in id order.

// op is one request's share of a commit.
type op struct {
	recs   []record
	sync   bool          // recs must be on disk before the answer
	events []audit.Event // audited in the same commit
	// refused gives the events to audit instead when the journal write
	// failed (the request is refused); nil audits events unchanged.
	refused func(err error) []audit.Event
	// after is the op that stored what this one answers about (a
	// duplicate's original): if that was refused, so is this.
	after *op
	// apply, if set, runs under s.mu once the commit is over, with the
	// journal's error (nil: recs are stored).
	apply func(err error)
	// err is the outcome: nil, or why the request could not be stored or
	// recorded. Read it after wait.
	err  error
	done chan struct{}
}

func (s *Server) event(event, actor, target, detail string) audit.Event {
	return audit.Event{Time: s.now(), Event: event, Actor: actor, Target: target, Detail: detail}
}

// committer is the queue of ops waiting for the next commit.
type committer struct {
	mu      sync.Mutex
	queue   []*op
	running bool
	wake    chan struct{} // cap 1
	stopped chan struct{}
	// For benchmarks: commits made and ops they held.
	commits, ops atomic.Int64
}

// submit queues o for the next commit; while the committer runs it never
// blocks, so it may be called with s.mu held (which keeps the queue in id
// order). Before Serve starts the committer and after it stops, o is
// committed at once, in the caller, and commit takes s.mu: there it must be
// called without s.mu. Serve keeps that true by starting the committer
// before it accepts a connection and stopping it only after every
// connection's handler has returned.
func (s *Server) submit(o *op) {
	o.done = make(chan struct{})
	c := &s.commits
	c.mu.Lock()
	if !c.running {
		c.mu.Unlock()
		s.commit([]*op{o})
		return
	}
	c.queue = append(c.queue, o)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// wait waits until o is committed and returns its outcome. Never call it
// with s.mu held: the commit needs it.
func (o *op) wait() error {
	<-o.done
	return o.err
}

// record audits events in the next commit and waits until they are on disk.
// Call without s.mu.
func (s *Server) record(events ...audit.Event) error {
	o := &op{events: events}
	s.submit(o)
	return o.wait()
}

// startCommitter starts the committer; stopCommitter commits what is queued
// and stops it.
func (s *Server) startCommitter() {
	c := &s.commits
	c.mu.Lock()
	c.running = true
	c.wake = make(chan struct{}, 1)
	c.stopped = make(chan struct{})
	c.mu.Unlock()
	go func() {
		defer close(c.stopped)
		answered := 0 // ops in the last commit
		var took time.Duration
		for range c.wake {
			for {
				batch := c.gather(answered, took/2)
				if len(batch) == 0 {
					break
				}
				t0 := time.Now()
				s.commit(batch)
				answered, took = len(batch), time.Since(t0)
				c.commits.Add(1)
				c.ops.Add(int64(len(batch)))
			}
		}
	}()
}

// gather takes the queued ops. Requesters answered by the last commit
// usually send again at once; if fewer than that are queued, it waits for
// them up to linger (half the last commit's time, at most maxLinger), so
// that they share one commit instead of alternating between two half-full
// ones. With one requester at a time it never waits.
func (c *committer) gather(answered int, linger time.Duration) []*op {
	deadline := time.Now().Add(min(linger, maxLinger))
	for {
		c.mu.Lock()
		n := len(c.queue)
		if n == 0 || n >= answered || !time.Now().Before(deadline) {
			batch := c.queue
			c.queue = nil
			c.mu.Unlock()
			return batch
		}
		c.mu.Unlock()
		time.Sleep(lingerStep)
	}
}

const (
	maxLinger  = time.Millisecond
	lingerStep = 20 * time.Microsecond
)

func (s *Server) stopCommitter() {
	c := &s.commits
	c.mu.Lock()
	if !c.running {
		c.mu.Unlock()
		return
	}
	c.running = false
	close(c.wake)
	c.mu.Unlock()
	<-c.stopped
	// Anything queued between the last pass and running = false.
	c.mu.Lock()
	batch := c.queue
	c.queue = nil
	c.mu.Unlock()
	if len(batch) > 0 {
		s.commit(batch)
	}
}

// commit writes one batch: journal records first (a write, not yet synced, so
// that a full disk is known before anything is audited), then the journal's
// fsync and the audit batch at once. A journal write that failed refuses
// every op with records and audits why instead; an audit that failed takes
// the batch's records back out of the journal and stops the relay. Then each
// op is applied and answered.
func (s *Server) commit(batch []*op) {
	var recs []record
	needSync := false
	for _, o := range batch {
		recs = append(recs, o.recs...)
		needSync = needSync || o.sync && len(o.recs) > 0
	}
	start := s.j.size
	var jerr error
	if len(recs) > 0 {
		jerr = s.j.write(recs)
		if jerr != nil && s.j.broken != nil {
			s.kill(s.j.broken)
		}
	}
	if jerr != nil {
		for _, o := range batch {
			if len(o.recs) > 0 {
				o.err = jerr
			}
		}
	}
	var events []audit.Event
	for _, o := range batch {
		events = append(events, o.audited()...)
	}
	var serr, aerr error
	var wg sync.WaitGroup
	if jerr == nil && needSync {
		wg.Go(func() { serr = s.j.sync() })
	}
	if len(events) > 0 {
		aerr = appendBatch(s.cfg.Audit, events)
	}
	wg.Wait()
	if serr != nil {
		jerr = serr
		s.kill(serr)
		// Refused, so not stored either: the unsynced records may still
		// reach the disk, and a restart would deliver what the sender was
		// told was refused. Best effort: the journal is failing anyway.
		if len(recs) > 0 {
			s.j.drop(start)
		}
		var why []audit.Event
		for _, o := range batch {
			if len(o.recs) > 0 || o.after != nil && len(o.after.recs) > 0 {
				o.err = serr
				if o.refused != nil {
					why = append(why, o.refused(serr)...)
				}
			}
		}
		if aerr == nil {
			aerr = appendBatch(s.cfg.Audit, why)
		}
	}
	if aerr != nil {
		s.kill(fmt.Errorf("relay stopped: %w; it cannot run without recording its decisions: fix the audit log, then restart", aerr))
		// Unrecorded, so not stored either: take the batch back out.
		if jerr == nil && len(recs) > 0 {
			jerr = s.j.undo(start)
		}
		if jerr == nil {
			jerr = fmt.Errorf("the audit log could not be written (%v)", aerr)
		}
	}
	if jerr == nil && aerr == nil && len(recs) > 0 {
		// Not synced: if it is lost, the next start records this batch
		// again (reRecord), which is safe.
		s.j.write([]record{{Op: "audited"}})
	}
	var compacting bool
	var compacted []audit.Event
	s.mu.Lock()
	for _, o := range batch {
		switch {
		case len(o.recs) > 0:
			o.err = jerr
		case aerr != nil:
			o.err = fmt.Errorf("the audit log could not be written (%v)", aerr)
		case o.after != nil && o.err == nil:
			o.err = o.after.err
		}
		if o.apply != nil {
			o.apply(o.err)
		}
	}
	if jerr == nil && len(recs) > 0 {
		compacting, compacted = s.maybeCompact()
	}
	s.mu.Unlock()
	for _, o := range batch {
		close(o.done)
	}
	// The batch is on disk in the old journal already: it is answered
	// before the new one is synced into place.
	if compacting {
		compacted = s.finishCompact()
	}
	if err := appendBatch(s.cfg.Audit, compacted); err != nil {
		s.kill(fmt.Errorf("relay stopped: %w; it cannot run without recording its decisions: fix the audit log, then restart", err))
	}
}

// audited is what o records: its events, or, if what it depends on was not
// stored, why it was refused.
func (o *op) audited() []audit.Event {
	err := o.err
	if err == nil && o.after != nil {
		err = o.after.err
	}
	if err != nil && o.refused != nil {
		return o.refused(err)
	}
	return o.events
}

// appendBatch records events with one fsync.
func appendBatch(l *audit.Log, events []audit.Event) error {
	return l.AppendBatch(events)
}

// alive reports whether the relay can still do its job.
func (s *Server) alive() bool { return s.dead.Err() == nil }
