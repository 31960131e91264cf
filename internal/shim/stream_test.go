package shim

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

type streamBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *streamBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *streamBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitStream(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The stream holds what the pane printed before it started (the snapshot)
// and, byte for byte, what it printed after, even once the pane cleared its
// screen and scrollback.
func TestStreamKeepsClearedText(t *testing.T) {
	tm, dir := testTmux(t)
	trigger := filepath.Join(dir, "go")
	pane := newSession(t, tm, "sh", "-c", `printf 'before \033[31mred\033[0m\n'
while [ ! -e "$1" ]; do sleep 0.05; done
printf 'secret line\n'
sleep 0.3
printf '\033[2J\033[3J\033[H'
printf 'after clear \\ back\ttab \303\251\n'
exec sleep 30`, "sh", trigger)
	waitStream(t, "the pane's first line", func() bool {
		s, _ := tm.Capture(context.Background(), pane, 0)
		return strings.Contains(s, "before red")
	})

	var out streamBuf
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- tm.Stream(ctx, StreamOptions{History: -1, Out: &out}) }()
	waitStream(t, "the snapshot", func() bool { return strings.Contains(out.String(), "before ") })
	if err := os.WriteFile(trigger, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	waitStream(t, "the output after the clear", func() bool { return strings.Contains(out.String(), "tab \u00e9") })

	got := out.String()
	for _, want := range []string{
		"before \x1b[31mred\r\n", // the snapshot keeps colours (capture-pane -e)
		"secret line\r\n",
		"\x1b[2J\x1b[3J\x1b[H",                // the clear, as printed
		"after clear \\ back\ttab \u00e9\r\n", // backslash, tab, UTF-8
	} {
		if !strings.Contains(got, want) {
			t.Errorf("stream lacks %q:\n%q", want, got)
		}
	}
	if n := strings.Count(got, "before "); n != 1 {
		t.Errorf("the first line appears %d times:\n%q", n, got)
	}
	// The pane itself no longer has it.
	if s, err := tm.Capture(context.Background(), pane, 0); err != nil || strings.Contains(s, "secret") || strings.Contains(s, "before") {
		t.Errorf("the pane still shows cleared text (%v): %q", err, s)
	}

	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Stream did not end with its context")
	}
}

// `runner-agent stream` ends when tmux exits, and when its stdin (a pipe
// the recorder holds) is closed.
func TestStreamCommandEnds(t *testing.T) {
	tm, _ := testTmux(t)
	newSession(t, tm, "sh", "-c", "echo hello-stream; exec sleep 30")
	run := func(stdin io.Reader) (*streamBuf, chan int) {
		var out, errb streamBuf
		code := make(chan int, 1)
		go func() {
			code <- MainIO([]string{"stream", "--socket", tm.Socket, "--history", "0", "--header"}, stdin, &out, &errb)
		}()
		waitStream(t, "the snapshot", func() bool { return strings.Contains(out.String(), "hello-stream\r\n") })
		if !strings.HasPrefix(out.String(), StreamHeader+"hello-stream\r\n") {
			t.Errorf("--header: the stream begins %q", out.String())
		}
		return &out, code
	}
	pr, pw := io.Pipe()
	_, code := run(pr)
	pw.Close()
	select {
	case c := <-code:
		if c != 0 {
			t.Errorf("exit %d after stdin closed", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stream did not end when stdin closed")
	}

	_, code = run(nil)
	if err := tm.KillServer(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-code:
		if c != 0 {
			t.Errorf("exit %d after tmux exited", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stream did not end when tmux exited")
	}
	var errb bytes.Buffer
	if c := MainIO([]string{"stream", "--socket", tm.Socket}, nil, io.Discard, &errb); c != 1 || !strings.Contains(errb.String(), "runner-agent: stream: ") {
		t.Errorf("without a server: exit %d, %q", c, errb.String())
	}
}

func TestDecodeControl(t *testing.T) {
	long := strings.Repeat(`ab\033\134`, 30000) // escapes across 64 KiB pieces
	in := strings.Join([]string{
		"%begin 1 2 0",
		"%end 1 2 0",
		"%session-changed $0 agent",
		`%output %1 dropped: already in the snapshot\015\012`,
		"%begin 1 3 1",
		"snap one",
		"",
		"%output %1 not a notification: snapshot text",
		"snap two",
		"",
		"",
		"%end 1 3 1",
		`%output %1 live\015\012`,
		`%output %2 another pane\015\012`,
		`%output %12 not this pane either`,
		`%extended-output %1 25 : ext\134`,
		`%output %1 ` + long,
		`%output %1 odd \9 \12`,
		"%exit",
		`%output %1 after exit`,
	}, "\n") + "\n"
	want := "snap one\r\n\r\n%output %1 not a notification: snapshot text\r\nsnap two\r\n" +
		"live\r\next\\" + strings.Repeat("ab\x1b\\", 30000) + `odd \9 \12`
	for name, r := range map[string]io.Reader{"whole": strings.NewReader(in), "bytewise": iotest.OneByteReader(strings.NewReader(in))} {
		var out bytes.Buffer
		if err := decodeControl(r, "%1", "", &out); err != nil {
			t.Fatal(err)
		}
		if out.String() != want {
			t.Errorf("%s: got %q...\nwant %q...", name, truncMid(out.String()), truncMid(want))
		}
	}
	// A snapshot that failed (%error) leaves tmux's message, and output follows.
	var out bytes.Buffer
	decodeControl(strings.NewReader("%begin 5 6 1\nno such pane\n%error 5 6 1\n%output %1 x\n"), "%1", "H\n", &out)
	if out.String() != "H\nno such pane\r\nx" {
		t.Errorf("after %%error: %q", out.String())
	}
}

func truncMid(s string) string {
	if len(s) > 200 {
		return s[:100] + " ... " + s[len(s)-100:]
	}
	return s
}

// Served by init (StreamServer on its control connection): the same bytes
// as TestStreamKeepsClearedText, without a tmux client of the stream's
// own; the stream ends when init's connection to tmux does.
func TestStreamFromInit(t *testing.T) {
	tm, dir := testTmux(t)
	trigger := filepath.Join(dir, "go")
	pane := newSession(t, tm, "sh", "-c", `printf 'before \033[31mred\033[0m\n\n\n'
while [ ! -e "$1" ]; do sleep 0.05; done
printf 'secret line\n'
sleep 0.3
printf '\033[2J\033[3J\033[H'
printf 'after clear \\ back\ttab \303\251\n'
exec sleep 30`, "sh", trigger)
	waitStream(t, "the pane's first line", func() bool {
		s, _ := tm.Capture(context.Background(), pane, 0)
		return strings.Contains(s, "before red")
	})
	ctl := &Control{Bin: tm.Bin, Socket: tm.Socket, Session: SessionName, Watch: PaneWatch}
	srv := &StreamServer{Ctl: ctl, Pane: pane, Path: filepath.Join(dir, StreamSocketName)}
	ctl.OnOutput, ctl.OnLost = srv.Output, srv.Lost
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := srv.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	defer ctl.Close()

	var out, errb streamBuf
	code := make(chan int, 1)
	go func() {
		code <- MainIO([]string{"stream", "--socket", tm.Socket, "--header"}, nil, &out, &errb)
	}()
	waitStream(t, "the snapshot", func() bool { return strings.Contains(out.String(), "before ") })
	if n := ctl.sent.Load(); n != 1 {
		t.Errorf("%d commands on init's connection, want 1 (the snapshot): the stream did not come from init", n)
	}
	if err := os.WriteFile(trigger, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	waitStream(t, "the output after the clear", func() bool { return strings.Contains(out.String(), "tab \u00e9") })
	got := out.String()
	if want := StreamHeader + "before \x1b[31mred\r\n"; !strings.HasPrefix(got, want) {
		t.Errorf("stream begins %q, want %q (header, snapshot without trailing blank lines)", got, want)
	}
	for _, want := range []string{"secret line\r\n", "\x1b[2J\x1b[3J\x1b[H", "after clear \\ back\ttab \u00e9\r\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("stream lacks %q:\n%q", want, got)
		}
	}
	if n := strings.Count(got, "before "); n != 1 {
		t.Errorf("the first line appears %d times:\n%q", n, got)
	}
	// init's connection to tmux ends: so does the stream (the recorder asks again).
	ctl.mu.Lock()
	conn := ctl.conn
	ctl.mu.Unlock()
	conn.cmd.Process.Kill()
	select {
	case c := <-code:
		if c != 0 {
			t.Errorf("exit %d (%s) after init's connection ended", c, errb.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stream did not end with init's connection")
	}
}
