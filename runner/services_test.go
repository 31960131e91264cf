package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/relay"
	"github.com/runner-dev/runner/internal/services"
	"github.com/runner-dev/runner/internal/state"
)

// hostRun lays out a run's state with a relay config for the operator and
// the given agents, as apply would.
func hostRun(t *testing.T, agents ...string) (state.Run, relayFile) {
	t.Helper()
	// Unix socket paths are short: not t.TempDir's long name.
	root, err := os.MkdirTemp("", "svc-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	st := state.Run{Root: root, Name: "svc"}
	if err := st.Create(); err != nil {
		t.Fatal(err)
	}
	rf := relayFile{Run: st.Name, Journal: st.Journal(), Audit: st.Audit(),
		Sockets: map[string]string{relay.Operator: st.OperatorSocket()}, Credentials: map[string]string{}, ACL: map[string][]string{}}
	for _, id := range append([]string{relay.Operator}, agents...) {
		if id != relay.Operator {
			if err := st.CreateAgentRelayDir(id); err != nil {
				t.Fatal(err)
			}
			rf.Sockets[id] = st.AgentSocket(id)
			rf.ACL[id] = []string{relay.Operator}
		}
		cred, err := relay.GenerateCredential()
		if err != nil {
			t.Fatal(err)
		}
		rf.Credentials[id] = cred
		if err := st.WriteFile(st.Cred(id), []byte(cred+"\n"), 0o400); err != nil {
			t.Fatal(err)
		}
	}
	writeRelayFile(t, st, rf)
	if err := st.WriteFile(st.ServicesConfig(), []byte(`{"docker_host": "unix:///nowhere.sock"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	return st, rf
}

func writeRelayFile(t *testing.T, st state.Run, rf relayFile) {
	t.Helper()
	b, _ := json.Marshal(rf)
	if err := st.WriteFile(st.RelayConfig(), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func serveInProcess(t *testing.T, st state.Run, o ServicesOptions) (*servicesHandle, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeServices(ctx, st.Root, st.Name, o) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeServices: %v", err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if h := findServices(st); h != nil && (&Runner{}).relayAnswers(ctx, st) {
			return h, stop
		}
		select {
		case err := <-done:
			t.Fatalf("ServeServices returned at start: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the host services never served")
		}
	}
}

func componentStatus(t *testing.T, h *servicesHandle, name string) services.Status {
	t.Helper()
	sts, err := h.status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sts {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no component %q in %+v", name, sts)
	return services.Status{}
}

// A component that keeps failing (here the recorder: its engine is
// unreachable) is restarted with backoff and reported, while the relay
// beside it is never restarted: a connection opened before still works.
func TestFailingComponentLeavesTheOthers(t *testing.T) {
	st, rf := hostRun(t, "x")
	var dials atomic.Int32
	h, stop := serveInProcess(t, st, ServicesOptions{
		Engine: func(context.Context, string) (engine.Engine, error) {
			dials.Add(1)
			return nil, errors.New("engine down")
		},
		Policy: services.Policy{MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond, FailingAfter: 3},
	})
	defer stop()
	op, err := relay.Dial(context.Background(), st.OperatorSocket(), rf.Credentials[relay.Operator])
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if s := componentStatus(t, h, "recorder"); s.State == services.Failing && s.Restarts >= 3 {
			if s.LastError != "engine down" {
				t.Errorf("recorder's last error %q", s.LastError)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the recorder was never reported failing: %+v (dialled %d times)", componentStatus(t, h, "recorder"), dials.Load())
		}
	}
	if s := componentStatus(t, h, "relay"); s.State != services.Running || s.Restarts != 0 || s.Failures != 0 {
		t.Errorf("relay %+v: restarted beside a failing recorder", s)
	}
	if _, err := op.Stats(); err != nil {
		t.Errorf("the operator's connection from before the failures: %v", err)
	}
	audit := readAudit(t, st)
	if n := strings.Count(audit, `"event":"relay_start"`); n != 1 {
		t.Errorf("%d relay starts in the audit log, want 1", n)
	}
	if !strings.Contains(audit, `"event":"service_restart","actor":"runner","target":"recorder"`) ||
		strings.Count(audit, `"event":"service_failing","actor":"runner","target":"recorder"`) != 1 {
		t.Errorf("the audit log does not record the recorder's restarts and (once) that it keeps failing:\n%s", audit)
	}
}

// A changed relay config is reloaded in the same process: the relay is
// served anew (a queued message survives it), the recorder is not
// restarted; stopping removes the pid file and the sockets.
func TestReloadAndStop(t *testing.T) {
	st, rf := hostRun(t, "x")
	h, stop := serveInProcess(t, st, ServicesOptions{
		Engine: func(ctx context.Context, _ string) (engine.Engine, error) {
			return nil, errors.New("no engine in this test")
		},
		Policy: services.Policy{MinBackoff: time.Hour}, // the recorder fails once, then waits
	})
	op, err := relay.Dial(context.Background(), st.OperatorSocket(), rf.Credentials[relay.Operator])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op.Send("x", "queued for x"); err != nil {
		t.Fatal(err)
	}
	op.Close()
	before := componentStatus(t, h, "recorder")

	// Reload with nothing changed touches nothing.
	if err := h.reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	rf2 := rf
	rf2.Sockets = map[string]string{relay.Operator: rf.Sockets[relay.Operator], "x": rf.Sockets["x"], "y": st.AgentSocket("y")}
	ycred, _ := relay.GenerateCredential()
	rf2.Credentials = map[string]string{relay.Operator: rf.Credentials[relay.Operator], "x": rf.Credentials["x"], "y": ycred}
	if err := st.CreateAgentRelayDir("y"); err != nil {
		t.Fatal(err)
	}
	writeRelayFile(t, st, rf2)
	if err := h.reload(context.Background()); err != nil {
		t.Fatalf("reload: %v\n%s", err, readAudit(t, st))
	}
	if now := findServices(st); now == nil || now.pid != h.pid || now.started != h.started {
		t.Fatalf("after reload: %+v, want the same process %+v", now, h)
	}
	y, err := relay.Dial(context.Background(), st.AgentSocket("y"), rf2.Credentials["y"])
	if err != nil {
		t.Fatalf("the new agent's socket after reload: %v", err)
	}
	y.Close()
	op, err = relay.Dial(context.Background(), st.OperatorSocket(), rf.Credentials[relay.Operator])
	if err != nil {
		t.Fatal(err)
	}
	stats, err := op.Stats()
	op.Close()
	queued := -1
	for _, s := range stats {
		if s.ID == "x" {
			queued = s.Queued
		}
	}
	if err != nil || queued != 1 {
		t.Errorf("x's queue after the relay's reload holds %d messages (%v), want the 1 sent before", queued, err)
	}
	if n := strings.Count(readAudit(t, st), `"event":"relay_start"`); n != 2 {
		t.Errorf("%d relay starts, want 2 (start, reload)", n)
	}
	if after := componentStatus(t, h, "recorder"); after.Restarts != before.Restarts {
		t.Errorf("the recorder restarted on a relay reload: %+v then %+v", before, after)
	}

	stop()
	if findServices(st) != nil {
		t.Error("still found after stop")
	}
	for _, p := range []string{st.ServicesPID(), st.ServicesSocket(), st.OperatorSocket(), st.AgentSocket("x"), st.AgentSocket("y")} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s left after stop (%v)", p, err)
		}
	}
}

// findServices never trusts a pid alone: a pid file whose start time does
// not match the process, or a lock nobody holds, is no process.
func TestFindServicesVerifies(t *testing.T) {
	st, _ := hostRun(t)
	me, err := procStartTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	write := func(start uint64) {
		if err := st.WriteFile(st.ServicesPID(), fmt.Appendf(nil, "%d %d\n", os.Getpid(), start), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(me)
	if findServices(st) != nil {
		t.Error("found with no lock held")
	}
	lock, err := takeLock(st.ServicesLock())
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if h := findServices(st); h == nil || h.pid != os.Getpid() {
		t.Errorf("lock held, pid and start time right: %+v", h)
	}
	write(me + 1) // the pid reused by a later process
	if findServices(st) != nil {
		t.Error("found with the wrong start time")
	}
	if _, err := takeLock(st.ServicesLock()); err == nil || !strings.Contains(err.Error(), "another process serves this run") {
		t.Errorf("a second lock: %v", err)
	}
}

func readAudit(t *testing.T, st state.Run) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Clean(st.Audit()))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
