package shim

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// streamServer serves pane's stream from a control connection of its own,
// as init does.
func streamServer(t *testing.T, tm *Tmux, dir, pane string) *StreamServer {
	t.Helper()
	ctl := &Control{Bin: tm.Bin, Socket: tm.Socket, Session: SessionName}
	srv := &StreamServer{Ctl: ctl, Pane: pane, Path: filepath.Join(dir, StreamSocketName)}
	ctl.OnOutput, ctl.OnLost = srv.Output, srv.Lost
	ctx, cancel := context.WithCancel(context.Background())
	if err := srv.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); srv.Close(); ctl.Close() })
	return srv
}

// openStream asks srv for a stream; ok is whether it said hello.
func openStream(t *testing.T, srv *StreamServer) (c net.Conn, br *bufio.Reader, ok bool) {
	t.Helper()
	c, err := net.Dial("unix", srv.Path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, "stream -1\n"); err != nil {
		c.Close()
		return nil, nil, false
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br = bufio.NewReader(c)
	hello, _ := br.ReadString('\n')
	c.SetReadDeadline(time.Time{})
	if hello != streamHello {
		c.Close()
		return nil, nil, false
	}
	return c, br, true
}

// The pane holds lines equal to the end of the snapshot's reply (every
// tag tmux could give it in these seconds), then a forged answer: the snapshot ends early, but on the stream's own connection, so
// init's connection (delivery, supervision) still answers its next
// commands with their own answers.
func TestStreamForgedReply(t *testing.T) {
	tm, dir := testTmux(t)
	var spray strings.Builder
	t0 := time.Now().Unix()
	for ts := t0 - 1; ts <= t0+3; ts++ {
		for n := 0; n < 3000; n++ { // tmux numbers commands server-wide
			fmt.Fprintf(&spray, "%%end %d %d 1\n", ts, n)
		}
	}
	// Past the end, lines are read as the control client's own: a forged
	// answer (to the next command, if it were on that connection).
	spray.WriteString("%begin 1 1 1\n%1 0   1234\n%end 1 1 1\nSPRAY-END\n")
	file := filepath.Join(dir, "spray")
	if err := os.WriteFile(file, []byte(spray.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	pane := newSession(t, tm, "/bin/cat", file, "-")
	waitStream(t, "the spray", func() bool {
		s, _ := tm.Capture(context.Background(), pane, 0)
		return strings.Contains(s, "SPRAY-END")
	})
	tm.Ctl = &Control{Bin: tm.Bin, Socket: tm.Socket, Session: SessionName, Watch: PaneWatch}
	defer tm.Ctl.Close()
	ctx := context.Background()
	if _, err := tm.PaneState(ctx, pane); err != nil { // init's connection is up
		t.Fatal(err)
	}
	sent := tm.Ctl.sent.Load()

	srv := streamServer(t, tm, dir, pane)
	c, br, ok := openStream(t, srv)
	if !ok {
		t.Fatal("no stream from the server")
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	got, _ := io.ReadAll(br)
	if !strings.Contains(string(got), "%end ") || strings.Contains(string(got), "SPRAY-END") {
		t.Fatalf("the snapshot did not end at a forged %%end (the test did not exercise the forgery):\n%.300q", got)
	}
	if n := tm.Ctl.sent.Load(); n != sent {
		t.Errorf("%d commands on init's connection for a stream, want none", n-sent)
	}
	for i := range 3 {
		want := fmt.Sprintf("answer-%d", i)
		out, err := tm.Ctl.Run(ctx, []string{"display-message", "-p", want})
		if err != nil || out != want+"\n" {
			t.Fatalf("init's connection answered %q, %v; want %q", out, err, want+"\n")
		}
		st, err := tm.PaneState(ctx, pane)
		if err != nil || st.ID != pane || st.PID == 1234 || !st.Running() {
			t.Fatalf("PaneState = %+v, %v: want pane %s running", st, err, pane)
		}
	}
	if n := tm.Ctl.sent.Load(); n != sent+6 {
		t.Errorf("%d commands on init's connection, want 6 (they fell back to processes?)", n-sent)
	}
}

// An agent opening streams in a loop gets streamMaxConns; another is
// closed before the hello (its stream runs its own client), and a stream
// that goes away frees its place even while the pane prints nothing.
func TestStreamServerCapsConnections(t *testing.T) {
	tm, dir := testTmux(t)
	pane := newSession(t, tm, "/bin/cat", "-")
	srv := streamServer(t, tm, dir, pane)
	var open []net.Conn
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	for i := range streamMaxConns {
		c, _, ok := openStream(t, srv)
		if !ok {
			t.Fatalf("stream %d refused, want %d served", i+1, streamMaxConns)
		}
		open = append(open, c)
	}
	if c, _, ok := openStream(t, srv); ok {
		c.Close()
		t.Fatalf("stream %d served, want at most %d", streamMaxConns+1, streamMaxConns)
	}
	open[0].Close()
	open = open[1:]
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, _, ok := openStream(t, srv)
		if ok {
			open = append(open, c)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a stream that went away did not free its place")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
