package relay

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// diskGate stands in for the journal's disk: it can hold a sync until
// released, count syncs and fail writes.
type diskGate struct {
	syncs     atomic.Int64
	hold      atomic.Bool
	entered   chan struct{}
	release   chan struct{}
	failWrite atomic.Bool
	failSync  atomic.Bool
}

func gate(h *harness) *diskGate {
	g := &diskGate{entered: make(chan struct{}, 1), release: make(chan struct{})}
	h.beforeServe = func(s *Server) {
		s.j.syncFile = func(f *os.File) error {
			g.syncs.Add(1)
			if g.failSync.Load() {
				return &os.PathError{Op: "fsync", Path: f.Name(), Err: syscall.EIO}
			}
			if g.hold.Load() {
				g.entered <- struct{}{}
				<-g.release
			}
			return f.Sync()
		}
		s.j.writeFile = func(f *os.File, b []byte) (int, error) {
			if g.failWrite.Load() {
				return 0, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
			}
			return f.Write(b)
		}
	}
	return g
}

type sendResult struct {
	body string
	id   uint64
	err  error
}

// holdCommit sends one message and holds its commit in the journal's sync;
// it returns that send's result channel.
func holdCommit(t *testing.T, g *diskGate, c *Client) <-chan sendResult {
	t.Helper()
	g.hold.Store(true)
	first := make(chan sendResult, 1)
	go func() {
		id, err := c.Send("eng-1", "first")
		first <- sendResult{"first", id, err}
	}()
	select {
	case <-g.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the first send never reached the journal's sync")
	}
	g.hold.Store(false)
	return first
}

// dialN opens n operator connections (before a commit is held: hello is
// audited too).
func dialN(h *harness, n int) []*Client {
	cs := make([]*Client, n)
	for i := range cs {
		cs[i] = h.dial(Operator)
	}
	return cs
}

// sendWhileHeld starts a send on each of cs and waits until all are queued
// for the next commit.
func sendWhileHeld(t *testing.T, h *harness, cs []*Client) <-chan sendResult {
	t.Helper()
	n := len(cs)
	out := make(chan sendResult, n)
	for i, c := range cs {
		body := fmt.Sprintf("batched-%d", i)
		go func() {
			id, err := c.Send("eng-1", body)
			out <- sendResult{body, id, err}
		}()
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if queued := queuedWrites(h); queued == n {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d sends queued for the next commit", queuedWrites(h), n)
		}
	}
}

// queuedWrites counts the ops waiting for the next commit that write the
// journal (sends), not audit-only ones (flushNoisy's, say).
func queuedWrites(h *harness) int {
	h.srv.commits.mu.Lock()
	defer h.srv.commits.mu.Unlock()
	n := 0
	for _, o := range h.srv.commits.queue {
		if len(o.recs) > 0 {
			n++
		}
	}
	return n
}

func queuedOps(h *harness) int {
	h.srv.commits.mu.Lock()
	defer h.srv.commits.mu.Unlock()
	n := 0
	for _, o := range h.srv.commits.queue {
		if len(o.recs) > 0 || o.after != nil {
			n++
		}
	}
	return n
}

func journalText(t *testing.T, h *harness) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(h.cfg.StateDir, "journal"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Sends that arrive while a commit runs are committed together, with one
// journal fsync, and none is answered (or delivered) before its batch is on
// disk with its audit lines.
func TestGroupCommitAnswersOnlyWhenDurable(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.RateLimit = Rate{PerSecond: 1e6, Burst: 1e6} })
	g := gate(h)
	h.start()
	inbox := h.subscribe("eng-1")
	const n = 9
	cs := dialN(h, n+1)
	first := holdCommit(t, g, cs[n])
	syncsBefore := g.syncs.Load()
	rest := sendWhileHeld(t, h, cs[:n])
	// The first message is written, not yet synced: nobody has an answer,
	// and nothing is delivered.
	if !strings.Contains(journalText(t, h), `"body":"first"`) {
		t.Fatal("the held commit's record is not in the journal file")
	}
	select {
	case r := <-first:
		t.Fatalf("first send answered (%d, %v) while its fsync was held", r.id, r.err)
	case r := <-rest:
		t.Fatalf("%s answered (%d, %v) before its batch was committed", r.body, r.id, r.err)
	case d := <-inbox:
		t.Fatalf("%+v delivered before it was on disk", d)
	case <-time.After(200 * time.Millisecond):
	}
	close(g.release)
	if r := <-first; r.err != nil {
		t.Fatal(r.err)
	}
	ids := map[string]uint64{}
	for range n {
		r := <-rest
		if r.err != nil {
			t.Fatalf("%s: %v", r.body, r.err)
		}
		ids[r.body] = r.id
	}
	if got := g.syncs.Load() - syncsBefore; got != 1 {
		t.Errorf("the %d sends queued during one commit took %d journal fsyncs, want 1", n, got)
	}
	j, sends := journalText(t, h), 0
	for body, id := range ids {
		if !strings.Contains(j, fmt.Sprintf(`"id":%d,`, id)) || !strings.Contains(j, body) {
			t.Errorf("%s (id %d) answered ok but not in the journal", body, id)
		}
	}
	for _, a := range h.auditLines() {
		if a.Event == "send" && a.Actor == Operator {
			sends++
		}
	}
	if sends != n+1 {
		t.Errorf("%d send lines in the audit log, want %d", sends, n+1)
	}
	receive(t, inbox, n+1)
}

// A journal write that fails refuses every send of its batch: each is
// answered unavailable and audited as journal_error, none is stored or
// delivered, and the relay goes on serving.
func TestGroupCommitFailedWriteRefusesTheBatch(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.RateLimit = Rate{PerSecond: 1e6, Burst: 1e6} })
	g := gate(h)
	h.start()
	const n = 5
	cs := dialN(h, n+1)
	first := holdCommit(t, g, cs[n])
	rest := sendWhileHeld(t, h, cs[:n])
	g.failWrite.Store(true)
	close(g.release)
	if r := <-first; r.err != nil {
		t.Fatalf("the send committed before the failure: %v", r.err)
	}
	refused := map[uint64]bool{}
	for range n {
		r := <-rest
		wantCode(t, r.err, CodeUnavailable)
	}
	for _, a := range h.auditLines() {
		if a.Event == "journal_error" && strings.Contains(a.Detail, "not stored, refused") && strings.Contains(a.Detail, "no space left") {
			var id uint64
			fmt.Sscanf(a.Detail, "id=%d", &id)
			refused[id] = true
		}
		if a.Event == "send" && !strings.Contains(a.Detail, "id=1 ") {
			t.Errorf("audited as sent: %+v", a)
		}
	}
	if len(refused) != n {
		t.Errorf("%d refused sends audited as journal_error, want %d: %v", len(refused), n, h.auditLines())
	}
	if j := journalText(t, h); strings.Contains(j, "batched-") {
		t.Errorf("refused messages are in the journal:\n%s", j)
	}
	g.failWrite.Store(false)
	if _, err := h.dial(Operator).Send("eng-1", "after"); err != nil {
		t.Fatalf("send once the disk is back: %v", err)
	}
	inbox := h.subscribe("eng-1")
	got := receive(t, inbox, 2)
	if got[0].Body != "first" || got[1].Body != "after" {
		t.Errorf("delivered %+v, want first and after only", got)
	}
	expectNothing(t, inbox, 200*time.Millisecond)
}

// Two sends with one client_id in one batch: one message, both answered
// with its id.
func TestGroupCommitDuplicateInFlight(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.RateLimit = Rate{PerSecond: 1e6, Burst: 1e6} })
	g := gate(h)
	h.start()
	cs := dialN(h, 3)
	first := holdCommit(t, g, cs[2])
	m := Message{To: "eng-1", Body: "once", ClientID: NewClientID()}
	out := make(chan sendResult, 2)
	var wg sync.WaitGroup
	for _, c := range cs[:2] {
		wg.Go(func() {
			id, err := c.SendMessage(m)
			out <- sendResult{id: id, err: err}
		})
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if queuedWrites(h) == 1 && queuedOps(h) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the two sends were not queued")
		}
	}
	close(g.release)
	<-first
	wg.Wait()
	a, b := <-out, <-out
	if a.err != nil || b.err != nil || a.id != b.id {
		t.Fatalf("sends of one client_id = %+v, %+v; want one id", a, b)
	}
	if n := strings.Count(journalText(t, h), `"body":"once"`); n != 1 {
		t.Errorf("journal holds the message %d times", n)
	}
}

// When the audit log cannot be written, the batch is not answered ok and
// its records are taken back out of the journal: nothing acts on an
// unrecorded decision, also after a restart.
func TestAuditFailureTakesTheBatchBack(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.start()
	op := h.dial(Operator)
	h.cfg.Audit.Close()
	if _, err := op.Send("eng-1", "unrecorded"); err == nil {
		t.Fatal("send answered ok without its audit line")
	}
	select {
	case err := <-h.done:
		if err == nil || !strings.Contains(err.Error(), "audit") {
			t.Fatalf("Serve = %v, want an audit error", err)
		}
		h.cancel = nil
	case <-time.After(5 * time.Second):
		t.Fatal("relay kept running without its audit log")
	}
	if j := journalText(t, h); strings.Contains(j, "unrecorded") {
		t.Errorf("the unrecorded message stayed in the journal:\n%s", j)
	}
}

// A journal whose fsync fails refuses the send, stops the relay and takes
// the records back out, so a restart cannot deliver what the sender was
// told was refused.
func TestFailedSyncTakesTheBatchBack(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	g := gate(h)
	h.start()
	op := h.dial(Operator)
	g.failSync.Store(true)
	if _, err := op.Send("eng-1", "unsynced"); err == nil {
		t.Fatal("send answered ok although the journal could not be synced")
	}
	select {
	case err := <-h.done:
		if err == nil {
			t.Fatal("Serve returned nil after a failed journal sync")
		}
		h.cancel = nil
	case <-time.After(5 * time.Second):
		t.Fatal("relay kept running with a journal it cannot sync")
	}
	if j := journalText(t, h); strings.Contains(j, "unsynced") {
		t.Errorf("the refused message stayed in the journal:\n%s", j)
	}
}
