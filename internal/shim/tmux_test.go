package shim

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// testTmux returns a Tmux on a fresh short socket path (unix socket paths are
// limited to 108 bytes) and kills its server when the test ends.
func testTmux(t *testing.T) (*Tmux, string) {
	t.Helper()
	bin, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("tmux not installed")
	}
	dir, err := os.MkdirTemp("", "rt")
	if err != nil {
		t.Fatal(err)
	}
	tm := &Tmux{Bin: bin, Socket: filepath.Join(dir, "s")}
	t.Cleanup(func() {
		_ = tm.KillServer(context.Background())
		os.RemoveAll(dir)
	})
	return tm, dir
}

func waitDead(t *testing.T, tm *Tmux, pane string) PaneState {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := tm.PaneState(context.Background(), pane)
		if err != nil {
			t.Fatalf("PaneState: %v", err)
		}
		if st.Dead {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("pane %s still alive: %+v", pane, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// echoLinger returns the argv prefix of the test binary's echo-linger mode
// (see TestMain): it prints its arguments, literally, like /bin/echo.
func echoLinger(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return self + "\x00echo-linger"
}

func newSession(t *testing.T, tm *Tmux, argv ...string) string {
	t.Helper()
	if a, b, ok := strings.Cut(argv[0], "\x00"); ok {
		argv = append([]string{a, b}, argv[1:]...)
	}
	pane, err := tm.NewSession(context.Background(), Session{
		Name: SessionName, Argv: argv,
		Options: []Option{{"remain-on-exit", "on"}, {"history-limit", "50000"}},
	})
	if err != nil {
		t.Fatalf("NewSession: %v", err)
	}
	return pane
}

func TestNewSessionEchoThenDead(t *testing.T) {
	tm, _ := testTmux(t)
	pane := newSession(t, tm, echoLinger(t), "hello")
	st := waitDead(t, tm, pane)
	if st.ExitStatus == nil || *st.ExitStatus != 0 || st.ExitSignal != nil {
		t.Errorf("state = %+v, want exit status 0", st)
	}
	out, err := tm.Capture(context.Background(), pane, 100)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "hello\n") || !strings.Contains(out, "Pane is dead (status 0") {
		t.Errorf("capture = %q, want hello and the dead-pane line", out)
	}
	if v, _ := tm.Option(context.Background(), "history-limit"); v != "50000" {
		t.Errorf("history-limit = %q", v)
	}
}

func TestExitStatusAndSignal(t *testing.T) {
	tm, _ := testTmux(t)
	pane := newSession(t, tm, "/bin/sh", "-c", "exit 3")
	if st := waitDead(t, tm, pane); st.ExitStatus == nil || *st.ExitStatus != 3 {
		t.Errorf("state = %+v, want exit status 3", st)
	}
	tm2, _ := testTmux(t)
	pane = newSession(t, tm2, "/bin/sh", "-c", "kill -KILL $$")
	if st := waitDead(t, tm2, pane); st.ExitSignal == nil || *st.ExitSignal != 9 || st.ExitStatus != nil {
		t.Errorf("state = %+v, want killed by signal 9", st)
	}
}

func TestShellMetacharactersArriveLiterally(t *testing.T) {
	tm, dir := testTmux(t)
	pwned := filepath.Join(dir, "pwned")
	arg := "$(id); touch " + pwned + " `id` | & > x"
	pane := newSession(t, tm, echoLinger(t), arg)
	waitDead(t, tm, pane)
	out, _ := tm.Capture(context.Background(), pane, 100)
	if !strings.Contains(out, arg+"\n") {
		t.Errorf("capture = %q, want the argument verbatim", out)
	}
	if _, err := os.Stat(pwned); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s exists (or %v): a shell ran the argument", pwned, err)
	}
}

// tmux splits its own argv at arguments ending in ';'. An agent argv must
// not be able to append tmux commands: ["echo", "a;", "kill-server"].
func TestTmuxCommandSeparatorInArgv(t *testing.T) {
	tm, _ := testTmux(t)
	pane := newSession(t, tm, "/bin/sh", "-c", `printf '%s|' "$@"; echo; sleep 0.2`, "sh", "a;", ";", "kill-server")
	waitDead(t, tm, pane)
	out, err := tm.Capture(context.Background(), pane, 100)
	if err != nil {
		t.Fatalf("server gone? %v", err)
	}
	if !strings.Contains(out, "a;|;|kill-server|\n") {
		t.Errorf("capture = %q", out)
	}
}

// nastyArgs are argv elements that a shell, tmux's parser or tmux's format
// expansion would change.
var nastyArgs = []string{
	"", " ", "a;", ";", `\;`, `a\;`, `a\\;`, ";;", "{", "}", "#{pane_pid}", "#[fg=red]", "##",
	"-x", "--", "~", "$HOME", "$(id)", "`id`", "'", `"`, `\`, "x y", "tab\there",
	"line\nbreak", "héllo ✓ 日本", "*", "?", "[a]", "!", "&&", "|", ">/tmp/x", "%0", "=agent:",
}

func TestArgvRoundTripsExactly(t *testing.T) {
	tm, dir := testTmux(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "argv.json")
	argv := append([]string{self, "dump-argv", out}, nastyArgs...)
	pane := newSession(t, tm, argv...)
	if st := waitDead(t, tm, pane); st.ExitStatus == nil || *st.ExitStatus != 0 {
		c, _ := tm.Capture(context.Background(), pane, 100)
		t.Fatalf("helper failed: %+v\n%s", st, c)
	}
	var got []string
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, nastyArgs) {
		t.Errorf("argv changed on the way:\n got %q\nwant %q", got, nastyArgs)
	}
}

func TestOptionValueRoundTrips(t *testing.T) {
	tm, _ := testTmux(t)
	newSession(t, tm, "/bin/sleep", "30")
	for _, v := range []string{`["a;"]`, "x;", `#{pane_pid}`, "é ✓", `a\;`, "-x", "--", "-"} {
		if err := tm.SetOption(context.Background(), "@t", v); err != nil {
			t.Fatal(err)
		}
		if got, _ := tm.Option(context.Background(), "@t"); got != v {
			t.Errorf("option %q read back as %q", v, got)
		}
	}
}

func TestNewSessionRefusesSingleArgument(t *testing.T) {
	tm, _ := testTmux(t)
	_, err := tm.NewSession(context.Background(), Session{Name: "agent", Argv: []string{"echo hi; touch x"}})
	if err == nil || !strings.Contains(err.Error(), "sh -c") {
		t.Fatalf("err = %v, want a refusal", err)
	}
	if _, err := tm.NewSession(context.Background(), Session{Name: "a:b", Argv: []string{"/bin/true", "x"}}); err == nil {
		t.Fatal("accepted session name a:b")
	}
}

func TestNoServer(t *testing.T) {
	tm, _ := testTmux(t)
	if _, err := tm.ServerPID(context.Background()); !errors.Is(err, ErrNoServer) {
		t.Fatalf("err = %v, want ErrNoServer", err)
	}
	if _, err := tm.PaneState(context.Background(), "%0"); !errors.Is(err, ErrNoServer) {
		t.Fatalf("err = %v, want ErrNoServer", err)
	}
}

func TestPaneStateUnknownPane(t *testing.T) {
	tm, _ := testTmux(t)
	newSession(t, tm, "/bin/sleep", "30")
	if _, err := tm.PaneState(context.Background(), "%9"); err == nil {
		t.Fatal("no error for a pane that does not exist")
	}
}

func TestSanitize(t *testing.T) {
	in := "ok\x1b[31mred\x07\r\ttab\u009b2J\x7f\xff end\n"
	want := "ok[31mred\ttab2J\ufffd end\n"
	if got := sanitize(in); got != want {
		t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
	}
}

func TestCaptureLastLines(t *testing.T) {
	tm, _ := testTmux(t)
	pane := newSession(t, tm, "/bin/sh", "-c", "i=1; while [ $i -le 120 ]; do echo line$i; i=$((i+1)); done; sleep 0.2")
	waitDead(t, tm, pane)
	out, err := tm.Capture(context.Background(), pane, 5)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 5 || lines[0] != "line117" || !strings.HasPrefix(lines[4], "Pane is dead") {
		t.Errorf("capture --lines 5 = %q", out)
	}
	all, _ := tm.Capture(context.Background(), pane, 0)
	if !strings.HasPrefix(all, "line1\nline2\n") {
		t.Errorf("capture all starts %q", all[:min(len(all), 40)])
	}
}

// Debian's tmux (libutempter) misses the SIGCHLD of a pane process that exits
// while the pane is being set up in about one run in four here; PaneState
// must still see the exit status, without init's periodic nudge.
func TestPaneStateRecoversMissedSIGCHLD(t *testing.T) {
	const n = 16
	tms := make([]*Tmux, n)
	panes := make([]string, n)
	for i := range tms {
		tms[i], _ = testTmux(t)
		panes[i] = newSession(t, tms[i], "/bin/sh", "-c", "sleep 0.1; exit 3")
	}
	time.Sleep(300 * time.Millisecond)
	for i := range tms {
		st := waitDead(t, tms[i], panes[i])
		if st.ExitStatus == nil || *st.ExitStatus != 3 {
			t.Errorf("pane %d: %+v", i, st)
		}
	}
}
