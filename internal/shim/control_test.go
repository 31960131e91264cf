package shim

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runner-dev/runner/internal/relay"
)

// ctlOnly gives tm a control connection and makes the client-process path
// fail (a tmux binary that does not exist), so whatever works afterwards
// went through the connection.
func ctlOnly(t *testing.T, tm *Tmux) {
	t.Helper()
	tm.Ctl = &Control{Bin: tm.Bin, Socket: tm.Socket, Session: SessionName}
	t.Cleanup(tm.Ctl.Close)
	tm.Bin = "/nonexistent/tmux"
	t.Cleanup(func() { tm.Bin = tm.Ctl.Bin }) // KillServer in testTmux's cleanup
}

// Arguments reach tmux byte for byte through a control-mode line, tmux's
// parser notwithstanding: quotes, separators, formats, variables, ~.
func TestControlArgumentsRoundTrip(t *testing.T) {
	tm, _ := testTmux(t)
	newSession(t, tm, "/bin/cat", "-")
	ctlOnly(t, tm)
	ctx := context.Background()
	for _, v := range []string{
		`it's`, `a;`, `a ; kill-server`, `'`, `''\'`, `#{pane_id}`, `$HOME`, `~`, `\`, `\n`,
		`"double"`, `{`, `}`, "tab\there", `%begin 1 2 1`, "é€", " lead and trail ",
	} {
		if err := tm.SetOption(ctx, "@v", v); err != nil {
			t.Fatalf("SetOption(%q): %v", v, err)
		}
		got, err := tm.Option(ctx, "@v")
		if err != nil || got != v {
			t.Fatalf("option %q came back %q (%v)", v, got, err)
		}
	}
	if _, err := tm.exec(ctx, "no-such-command"); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Fatalf("a failing command: err = %v, want tmux's message", err)
	}
	if _, err := tm.ServerPID(ctx); err != nil {
		t.Fatalf("the connection is unusable after a failed command: %v", err)
	}
}

// A newline cannot go on a control-mode line: such a command runs as a
// client process instead, with the same result.
func TestControlFallsBackForNewline(t *testing.T) {
	tm, _ := testTmux(t)
	newSession(t, tm, "/bin/cat", "-")
	bin := tm.Bin
	tm.Ctl = &Control{Bin: bin, Socket: tm.Socket, Session: SessionName}
	defer tm.Ctl.Close()
	ctx := context.Background()
	if err := tm.SetOption(ctx, "@v", "two\nlines"); err != nil {
		t.Fatal(err)
	}
	if got, _ := tm.Option(ctx, "@v"); got != "two\nlines" {
		t.Fatalf("got %q", got)
	}
}

// The connection comes back after its client dies; meanwhile commands run
// as processes.
func TestControlReconnects(t *testing.T) {
	tm, _ := testTmux(t)
	pane := newSession(t, tm, "/bin/cat", "-")
	tm.Ctl = &Control{Bin: tm.Bin, Socket: tm.Socket, Session: SessionName}
	defer tm.Ctl.Close()
	ctx := context.Background()
	for round := 0; round < 3; round++ {
		if ok, err := tm.PaneAlive(ctx, pane); !ok || err != nil {
			t.Fatalf("round %d: PaneAlive = %v, %v", round, ok, err)
		}
		tm.Ctl.mu.Lock()
		conn := tm.Ctl.conn
		tm.Ctl.mu.Unlock()
		if conn == nil {
			t.Fatalf("round %d: no control connection after a command", round)
		}
		conn.cmd.Process.Kill()
		<-conn.done
	}
	// Also through a server that went away and came back.
	if err := tm.KillServer(ctx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		_, err := tm.PaneState(ctx, pane)
		if errors.Is(err, ErrNoServer) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no server: err = %v, want ErrNoServer", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The new server is started by a client process, so that what is
	// tested is the connection finding it, not a NewSession racing the
	// old server's exit; commands bring the connection back once the
	// reconnect pause is over, however long the machine takes.
	pane = newSession(t, &Tmux{Bin: tm.Bin, Socket: tm.Socket}, "/bin/cat", "-")
	for deadline := time.Now().Add(10 * time.Second); ; {
		ok, err := tm.PaneAlive(ctx, pane)
		tm.Ctl.mu.Lock()
		conn := tm.Ctl.conn
		tm.Ctl.mu.Unlock()
		if ok && err == nil && conn != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the server came back: PaneAlive = %v, %v; connected %v", ok, err, conn != nil)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The exact bytes a program reads from a delivery through the connection:
// the same as through client processes (TestPasteBracketedExactBytes).
func TestControlPasteBracketedExactBytes(t *testing.T) {
	tm, dir := testTmux(t)
	tm.SubmitDelay = 10 * time.Millisecond
	pane, file := recorder(t, tm, true)
	ctlOnly(t, tm)
	msg := FormatDelivery(relay.Delivery{ID: 1, From: "operator", Kind: "message", Body: hostile + "\nline two"})
	if err := tm.PasteMessage(context.Background(), pane, msg); err != nil {
		t.Fatal(err)
	}
	waitFile(t, file, "\x1b[200~[from operator] "+hostileClean+"\r[from operator] line two\x1b[201~\r")
	if out, _ := tm.exec(context.Background(), "list-buffers"); out != "" {
		t.Errorf("buffers left behind: %q", out)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".msg-") {
			t.Errorf("message file left behind: %s", e.Name())
		}
	}
}

func TestControlPasteDeadPaneGetsNothing(t *testing.T) {
	tm, _ := testTmux(t)
	pane := newSession(t, tm, echoLinger(t), "bye")
	ctlOnly(t, tm)
	waitDead(t, tm, pane)
	err := tm.PasteMessage(context.Background(), pane, "[from pm] are you there")
	if !errors.Is(err, ErrPaneDead) {
		t.Fatalf("err = %v, want ErrPaneDead", err)
	}
	if out, _ := tm.Capture(context.Background(), pane, 0); strings.Contains(out, "are you there") {
		t.Errorf("a message landed in a dead pane:\n%s", out)
	}
}

// What the control client prints is the agent's to shape: a reply ends only
// at the %end repeating its %begin exactly; lines that merely look like one
// are data; a malformed %begin ends the connection.
func TestReadControlUntrusted(t *testing.T) {
	in := strings.Join([]string{
		"%begin 10 1 0", "%end 10 1 0", // the attach
		"%session-changed $0 agent",
		"%begin 11 2 1", "%end 11 2 0", "%end 11 3 1", "%error 11 2 1x", "%end 11 2 1 ", "data", "%end 11 2 1",
		"%begin 12 3 1", "failed", "%error 12 3 1",
		"%begin 13 4 0", "not ours", "%end 13 4 0",
		"%begin 14 5  1", "%end 14 5  1",
		"%begin 15 6 1", "%end 15 6 1",
	}, "\n") + "\n"
	ready := make(chan struct{})
	replies := make(chan ctlReply, 10)
	readControl(strings.NewReader(in), ctlEvents{ready: ready, replies: replies})
	select {
	case <-ready:
	default:
		t.Fatal("the attach's block did not make the connection ready")
	}
	close(replies)
	var got []ctlReply
	for r := range replies {
		got = append(got, r)
	}
	if len(got) != 2 {
		t.Fatalf("got %d replies, want 2 (the malformed %%begin ends it): %+v", len(got), got)
	}
	if want := []string{"%end 11 2 0", "%end 11 3 1", "%error 11 2 1x", "%end 11 2 1 ", "data"}; strings.Join(got[0].lines, "|") != strings.Join(want, "|") || got[0].failed {
		t.Errorf("first reply = %+v, want lines %q", got[0], want)
	}
	if !got[1].failed || strings.Join(got[1].lines, "|") != "failed" {
		t.Errorf("second reply = %+v, want a failure saying 'failed'", got[1])
	}
}

// With the control connection watching the pane, the supervisor sends
// tmux nothing while the agent runs quietly (no polling), yet restarts a
// command that ended and reports an after_idle time when it falls due.
func TestSupervisorWatchesInsteadOfPolling(t *testing.T) {
	tm, dir := testTmux(t)
	pane := newSession(t, tm, "/bin/sh", "-c", "read x; exit 3")
	tm.Ctl = &Control{Bin: tm.Bin, Socket: tm.Socket, Session: SessionName, Watch: PaneWatch}
	defer tm.Ctl.Close()
	self, _ := os.Executable()
	var mu sync.Mutex
	var reports []int
	s := &Supervisor{Tmux: tm, Pane: pane, Self: self, Argv: []string{"/bin/sh", "-c", "read x; exit 3"},
		Policy: RestartPolicy{Mode: RestartOnFailure, Max: 1}, StateFile: filepath.Join(dir, "sup"),
		Poll: 20 * time.Millisecond, Backoff: Backoff{Min: 10 * time.Millisecond},
		IdleAfter: func() []int { return []int{2} },
		ReportIdle: func(_ context.Context, secs int) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			reports = append(reports, secs)
			return 1, nil
		}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	// Quiet for 1.5s (75 ticks): a look or two at the start, no more.
	time.Sleep(1500 * time.Millisecond)
	if n := tm.Ctl.sent.Load(); n > 3 {
		t.Errorf("%d tmux commands while the pane was quiet, want at most 3 (no polling)", n)
	}
	// The after_idle time (2s after the last output's second) is reported.
	waitFor(t, 5*time.Second, "an idle report", func() bool { mu.Lock(); defer mu.Unlock(); return len(reports) == 1 })
	// The command ends: tmux says so, and it is restarted.
	before := tm.Ctl.sent.Load()
	if _, err := tm.Ctl.Run(ctx, []string{"send-keys", "-t", pane, "Enter"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a restart", func() bool {
		st, _ := os.ReadFile(s.StateFile)
		return strings.Contains(string(st), `"restarts":1`)
	})
	if n := tm.Ctl.sent.Load() - before; n > 20 {
		t.Errorf("%d tmux commands for one exit and restart", n)
	}
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !ok(); {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %s", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// PasteIfRunning pastes in one round trip only into the pane process it
// names, alive: a wrong pid or a dead pane gets nothing, and no buffer is
// left behind.
func TestPasteIfRunning(t *testing.T) {
	tm, _ := testTmux(t)
	pane, file := recorder(t, tm, true)
	ctlOnly(t, tm)
	ctx := context.Background()
	st, err := tm.PaneState(ctx, pane)
	if err != nil || !st.Running() {
		t.Fatalf("%+v %v", st, err)
	}
	before := tm.Ctl.sent.Load()
	if err := tm.PasteIfRunning(ctx, pane, st.PID, "[from pm] one\n[from pm] two"); err != nil {
		t.Fatal(err)
	}
	if n := tm.Ctl.sent.Load() - before; n != 3 {
		t.Errorf("%d lines sent for a paste, want 3 (load, if-shell, sync): one round trip", n)
	}
	waitFile(t, file, "\x1b[200~[from pm] one\r[from pm] two\x1b[201~")
	if err := tm.PasteIfRunning(ctx, pane, st.PID+1, "[from pm] wrong pid"); !errors.Is(err, ErrPaneDead) {
		t.Fatalf("another pid: err = %v, want ErrPaneDead", err)
	}
	if _, err := tm.exec(ctx, "kill-pane", "-t", pane); err == nil {
		// kill-pane removes it: then it is no pane at all.
		if err := tm.PasteIfRunning(ctx, pane, st.PID, "[from pm] gone"); err == nil {
			t.Fatal("pasted into a pane that is gone")
		}
	}
	time.Sleep(100 * time.Millisecond)
	if b, _ := os.ReadFile(file); strings.Contains(string(b), "wrong pid") || strings.Contains(string(b), "gone") {
		t.Errorf("text reached a pane it should not have: %q", b)
	}
	if out, _ := tm.exec(ctx, "list-buffers"); out != "" {
		t.Errorf("buffers left behind: %q", out)
	}
}

func TestPasteIfRunningDeadPane(t *testing.T) {
	tm, _ := testTmux(t)
	pane := newSession(t, tm, echoLinger(t), "bye")
	ctlOnly(t, tm)
	st, _ := tm.PaneState(context.Background(), pane)
	pid := st.PID
	st = waitDead(t, tm, pane)
	if err := tm.PasteIfRunning(context.Background(), pane, pid, "[from pm] are you there"); !errors.Is(err, ErrPaneDead) {
		t.Fatalf("err = %v, want ErrPaneDead", err)
	}
	if out, _ := tm.Capture(context.Background(), pane, 0); strings.Contains(out, "are you there") {
		t.Errorf("a message landed in a dead pane:\n%s", out)
	}
	if out, _ := tm.exec(context.Background(), "list-buffers"); out != "" {
		t.Errorf("buffers left behind: %q", out)
	}
}
