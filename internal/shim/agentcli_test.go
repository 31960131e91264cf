package shim

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/runner-dev/runner/internal/relay"
)

// agent runs the runner-agent CLI as identity id of r, with stdin.
func agent(t *testing.T, r *testRelay, id, stdin string, args ...string) (string, string, int) {
	t.Helper()
	t.Setenv(EnvRelaySocket, r.cfg.Sockets[id])
	t.Setenv(EnvCredential, r.creds[id])
	var out, errb bytes.Buffer
	code := MainIO(args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

// drain subscribes as id and acknowledges n deliveries.
func drain(t *testing.T, r *testRelay, id string, n int) []relay.Delivery {
	t.Helper()
	tok, _ := readCredential(r.creds[id])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := relay.Dial(ctx, r.cfg.Sockets[id], tok)
	if err != nil {
		t.Fatal(err)
	}
	var got []relay.Delivery
	sctx, stop := context.WithCancel(ctx)
	c.Subscribe(sctx, func(d relay.Delivery) error {
		got = append(got, d)
		if len(got) == n {
			// Acked once this returns; stop when the next frame is awaited.
			time.AfterFunc(50*time.Millisecond, stop)
		}
		return nil
	})
	stop()
	if len(got) != n {
		t.Fatalf("%s received %d deliveries, want %d: %+v", id, len(got), n, got)
	}
	return got
}

func TestAgentCLI(t *testing.T) {
	r := startRelay(t, map[string][]string{"pm": {"eng-*"}, "eng-1": {"pm"}}, "pm", "eng-1", "eng-2", "qa")

	out, errOut, code := agent(t, r, "pm", "", "send", "eng-1", "tests are green")
	if code != 0 || !regexp.MustCompile(`^sent #\d+ to eng-1\n$`).MatchString(out) {
		t.Fatalf("send: %d %q %q", code, out, errOut)
	}
	// Unquoted words are one message; "-" reads stdin (trailing newline dropped).
	if _, errOut, code := agent(t, r, "pm", "", "send", "eng-1", "two", "words"); code != 0 {
		t.Fatalf("send words: %d %q", code, errOut)
	}
	if _, errOut, code := agent(t, r, "pm", "from\nstdin\n", "send", "eng-1", "-"); code != 0 {
		t.Fatalf("send -: %d %q", code, errOut)
	}
	got := drain(t, r, "eng-1", 3)
	for i, want := range []string{"tests are green", "two words", "from\nstdin"} {
		if got[i].Body != want || got[i].From != "pm" {
			t.Errorf("delivery %d = %+v, want %q from pm", i, got[i], want)
		}
	}

	out, errOut, code = agent(t, r, "qa", "", "send", "pm", "let me in")
	if code != 1 || out != "" || !strings.HasPrefix(errOut, "runner-agent: relay refused: ") || !strings.Contains(errOut, "(forbidden)") {
		t.Errorf("forbidden send: %d %q %q", code, out, errOut)
	}

	out, _, code = agent(t, r, "pm", "", "peers")
	if code != 0 || out != "eng-1\neng-2\n" {
		t.Errorf("peers: %d %q", code, out)
	}
	if out, errOut, code := agent(t, r, "qa", "", "peers"); code != 0 || out != "" || !strings.Contains(errOut, "nobody") {
		t.Errorf("qa's peers: %d %q %q", code, out, errOut)
	}

	out, _, code = agent(t, r, "eng-1", "", "inbox")
	want := regexp.MustCompile(`^#(\d+) \[from pm\] tests are green\n#\d+ \[from pm\] two words\n#\d+ \[from pm\] from\n\[from pm\] stdin\n$`)
	if code != 0 || !want.MatchString(out) {
		t.Errorf("inbox: %d %q", code, out)
	}
	out, _, code = agent(t, r, "eng-1", "", "inbox", "-n", "1")
	if code != 0 || !strings.HasSuffix(out, "[from pm] from\n[from pm] stdin\n") || strings.Contains(out, "green") {
		t.Errorf("inbox -n 1: %d %q", code, out)
	}

	now := time.Now()
	out, errOut, code = agent(t, r, "eng-2", "", "schedule", "1.5m", "check", "the", "build")
	m := regexp.MustCompile(`^check-in #\d+ due (\S+) \(in (1m30s|1m29s)\)\n$`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("schedule: %d %q %q", code, out, errOut)
	}
	if due, err := time.Parse(time.RFC3339, m[1]); err != nil || due.Sub(now) < 89*time.Second || due.Sub(now) > 92*time.Second {
		t.Errorf("due %s (%v), want about 90s from now", m[1], err)
	}

	out, errOut, code = agent(t, r, "eng-2", "", "schedule", "8d", "too late")
	if code != 2 || out != "" || !strings.Contains(errOut, "not a duration") {
		t.Errorf("schedule 8d: %d %q %q", code, out, errOut)
	}
	out, errOut, code = agent(t, r, "eng-2", "", "schedule", "200h", "too late")
	if code != 1 || out != "" || !strings.Contains(errOut, "relay refused") {
		t.Errorf("schedule 200h: %d %q %q", code, out, errOut)
	}
}

func TestAgentCLIUsage(t *testing.T) {
	r := startRelay(t, nil, "eng-1")
	for _, args := range [][]string{
		{"send"}, {"send", "pm"}, {"send", "pm", "  "}, {"send", "pm", "-"},
		{"peers", "x"},
		{"inbox", "x"}, {"inbox", "-n", "0"}, {"inbox", "-n", "51"}, {"inbox", "-n", "x"},
		{"schedule"}, {"schedule", "5m"}, {"schedule", "soon", "x"}, {"schedule", "-5m", "x"}, {"schedule", "0s", "x"},
	} {
		out, errOut, code := agent(t, r, "eng-1", "", args...)
		if code != ExitUsage || out != "" || !strings.Contains(errOut, "usage: runner-agent "+args[0]) {
			t.Errorf("%q: %d %q %q", args, code, out, errOut)
		}
	}
}

func TestAgentCLIWithoutRelay(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(EnvRelaySocket, filepath.Join(dir, "relay.sock"))
	t.Setenv(EnvCredential, filepath.Join(dir, "cred"))
	_, errOut, code := runMain("peers")
	if code != 1 || !strings.Contains(errOut, "no relay credential") {
		t.Errorf("peers without a credential: %d %q", code, errOut)
	}
}
