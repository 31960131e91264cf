package runner_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runner-dev/runner/internal/state"
	"github.com/runner-dev/runner/internal/transcript"
	"github.com/runner-dev/runner/runner"
)

// transcriptAgent prints a coloured line and a "secret", waits for
// /tmp/clear, wipes its screen and scrollback, and then prints whatever
// appears in /tmp/say, and a flood of lines when /tmp/flood appears.
const transcriptAgent = `printf 'first \033[31mred-marker\033[0m line\n'
echo SECRET-BEFORE-CLEAR
while [ ! -e /tmp/clear ]; do sleep 0.1; done
printf '\033[2J\033[3J\033[H'
echo AFTER-CLEAR
while :; do
  if [ -e /tmp/say ]; then cat /tmp/say; rm -f /tmp/say; fi
  if [ -e /tmp/flood ]; then rm -f /tmp/flood; seq 1 20000; echo FLOOD-END; fi
  sleep 0.1
done`

func TestTranscript(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		// Inherited by the recorder apply starts: a small cap, to see it
		// rotate.
		const capBytes = 64 << 10
		t.Setenv(transcript.EnvMax, "64KiB")
		run := runName(t, te, "tr")
		cfg, file := writeConfig(t, fmt.Sprintf(`
run %q {
  %s
}
agent "alice" {
  image   = %q
  command = ["sh", "-c", %q]
}
`, run, te.accept, testImage, transcriptAgent))
		destroyAtEnd(t, te, run)
		r := newRunner(te)
		res, err := r.Apply(ctx(t), cfg)
		if err != nil {
			t.Fatalf("apply: %v", err)
		}
		id := res.IDs["alice"]
		st, err := state.ForRun(run)
		if err != nil {
			t.Fatal(err)
		}
		logs := func(o runner.LogsOptions) string {
			t.Helper()
			var b bytes.Buffer
			o.Out = &b
			if err := r.Logs(ctx(t), cfg, "alice", o); err != nil {
				t.Fatalf("logs: %v", err)
			}
			return b.String()
		}
		waitLogs := func(want string) string {
			t.Helper()
			deadline := time.Now().Add(30 * time.Second)
			for {
				var b bytes.Buffer
				err := r.Logs(ctx(t), cfg, "alice", runner.LogsOptions{Out: &b})
				if err == nil && strings.Contains(b.String(), want) {
					return b.String()
				}
				if time.Now().After(deadline) {
					t.Fatalf("logs never showed %q (%v); they show:\n%s\nrecorder log:\n%s", want, err, b.String(), readFile(st.RecordLog()))
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		inContainer := func(script string) {
			t.Helper()
			res, err := te.eng.Exec(ctx(t), id, "", []string{"sh", "-c", script})
			if err != nil || res.ExitCode != 0 {
				t.Fatalf("exec %q: %v %+v", script, err, res)
			}
		}

		t.Run("cleared-text-kept", func(t *testing.T) {
			waitLogs("SECRET-BEFORE-CLEAR")
			inContainer("touch /tmp/clear")
			out := waitLogs("AFTER-CLEAR")
			// The pane no longer has it, screen or scrollback...
			deadline := time.Now().Add(20 * time.Second)
			for {
				pane, err := r.Capture(ctx(t), cfg, "alice", 10000)
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(pane, "AFTER-CLEAR") {
					if strings.Contains(pane, "SECRET") {
						t.Fatalf("the agent's pane still shows the cleared text: %q", pane)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the pane never showed AFTER-CLEAR: %q", pane)
				}
				time.Sleep(100 * time.Millisecond)
			}
			// ...but its transcript does, in order.
			i, j := strings.Index(out, "SECRET-BEFORE-CLEAR"), strings.Index(out, "AFTER-CLEAR")
			if i < 0 || j < i {
				t.Errorf("logs: %q", out)
			}
		})

		t.Run("raw-and-stripped", func(t *testing.T) {
			raw := logs(runner.LogsOptions{Raw: true})
			if !strings.Contains(raw, "\x1b[31mred-marker") || !strings.Contains(raw, "\x1b[2J") {
				t.Errorf("--raw lost the escape sequences: %q", raw)
			}
			plain := logs(runner.LogsOptions{})
			if !strings.Contains(plain, "first red-marker line\n") || strings.ContainsAny(plain, "\x1b\r") {
				t.Errorf("stripped logs: %q", plain)
			}
			if s := logs(runner.LogsOptions{Since: time.Now().Add(time.Hour)}); s != "" {
				t.Errorf("--since an hour from now: %q", s)
			}
			if s := logs(runner.LogsOptions{Since: time.Now().Add(-time.Hour)}); s != plain {
				t.Errorf("--since an hour ago: %q, want all of it", s)
			}
		})

		t.Run("out-of-reach", func(t *testing.T) {
			c, err := te.raw.ContainerInspect(ctx(t), id)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range c.Mounts {
				src := filepath.Clean(m.Source)
				switch {
				case src == st.Cred("alice") || src == st.RelayDir():
					// its credential and the relay socket's directory
				case within(st.Transcripts(), src) || within(src, st.Transcripts()):
					t.Errorf("mount %s -> %s reaches the transcripts in %s", m.Source, m.Destination, st.Transcripts())
				case within(st.Private(), src) || within(src, st.Private()):
					t.Errorf("mount %s -> %s reaches the private directory %s", m.Source, m.Destination, st.Private())
				}
			}
			path := transcript.Path(st.Transcripts(), "alice")
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("transcript on the host: %v", err)
			}
			for _, p := range []string{path, st.Transcripts(), st.Private()} {
				res, err := te.eng.Exec(ctx(t), id, "", []string{"sh", "-c", `test -e "$1" || test -e "$1.1"`, "sh", p})
				if err != nil || res.ExitCode == 0 {
					t.Errorf("%s exists inside the container (%v)", p, err)
				}
			}
			res, err := te.eng.Exec(ctx(t), id, "", []string{"ls", "-A", runner.RelayMountTarget})
			if err != nil || strings.TrimSpace(res.Stdout) != "relay.sock" {
				t.Errorf("the relay directory holds %q (%v), want only relay.sock", res.Stdout, err)
			}
		})

		t.Run("follow-cli", func(t *testing.T) {
			cmd := exec.Command(filepath.Join(bins, "runner"), "logs", file, "alice", "-f")
			cmd.Env = append(os.Environ(), "DOCKER_HOST="+te.info.Endpoint)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			var (
				mu  sync.Mutex
				got strings.Builder
			)
			go func() {
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					mu.Lock()
					got.WriteString(sc.Text() + "\n")
					mu.Unlock()
				}
			}()
			waitOut := func(want string) {
				t.Helper()
				deadline := time.Now().Add(30 * time.Second)
				for {
					mu.Lock()
					s := got.String()
					mu.Unlock()
					if strings.Contains(s, want) {
						return
					}
					if time.Now().After(deadline) {
						t.Fatalf("logs -f never printed %q; it printed:\n%s\nstderr: %s", want, s, stderr.String())
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			waitOut("AFTER-CLEAR\n") // what was there when it started
			line := fmt.Sprintf("FOLLOW-%d", time.Now().UnixNano())
			inContainer(fmt.Sprintf("echo %s > /tmp/say.new && mv /tmp/say.new /tmp/say", line))
			waitOut(line + "\n")
			cmd.Process.Signal(syscall.SIGINT)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("logs -f after Ctrl-C: %v: %s", err, stderr.String())
				}
			case <-time.After(10 * time.Second):
				t.Error("logs -f did not stop on SIGINT")
			}
		})

		t.Run("rotation", func(t *testing.T) {
			inContainer("touch /tmp/flood")
			out := waitLogs("FLOOD-END")
			if !strings.Contains(out, "\n19999\n20000\nFLOOD-END\n") {
				t.Errorf("the newest output is not all there: ...%q", out[max(0, len(out)-200):])
			}
			if strings.Contains(out, "SECRET-BEFORE-CLEAR") {
				t.Error("the oldest output survived output of more than the cap")
			}
			ents, err := os.ReadDir(st.Transcripts())
			if err != nil {
				t.Fatal(err)
			}
			var total int64
			var names []string
			for _, e := range ents {
				fi, err := e.Info()
				if err != nil {
					t.Fatal(err)
				}
				total += fi.Size()
				names = append(names, e.Name())
				if fi.Mode().Perm() != 0o600 {
					t.Errorf("%s: mode %v, want 0600", e.Name(), fi.Mode().Perm())
				}
			}
			if total > capBytes || strings.Join(names, " ") != "alice.log alice.log.1" {
				t.Errorf("transcripts use %d bytes in %v; cap %d in alice.log and alice.log.1", total, names, capBytes)
			}
		})

		t.Run("replaced-container-continues", func(t *testing.T) {
			cfg2, _ := writeConfig(t, fmt.Sprintf(`
run %q {
  %s
}
agent "alice" {
  image   = %q
  command = ["sh", "-c", %q]
  env     = { SECOND = "yes" }
}
`, run, te.accept, testImage, transcriptAgent))
			res, err := r.Apply(ctx(t), cfg2)
			if err != nil {
				t.Fatalf("apply: %v", err)
			}
			if res.IDs["alice"] == id {
				t.Fatal("alice's container was not replaced")
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				out := logs(runner.LogsOptions{})
				end := strings.Index(out, "FLOOD-END")
				if end >= 0 && strings.Contains(out[end:], "SECRET-BEFORE-CLEAR") {
					if strings.Contains(out, "OCI runtime") || strings.Contains(out, "exec failed") {
						t.Errorf("an engine message got into the transcript: %q", out[end:])
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the new container's output never followed the old one's: ...%q\nrecorder log:\n%s", out[max(0, len(out)-300):], readFile(st.RecordLog()))
				}
				time.Sleep(100 * time.Millisecond)
			}
		})

		t.Run("destroy-stops-recorder", func(t *testing.T) {
			b, err := os.ReadFile(st.RecordPID())
			if err != nil {
				t.Fatalf("no recorder pid file: %v", err)
			}
			var pid int
			fmt.Sscan(string(b), &pid)
			if _, err := r.Destroy(ctx(t), run); err != nil {
				t.Fatal(err)
			}
			if pid <= 0 || syscall.Kill(pid, 0) == nil {
				t.Errorf("recorder %d still running after destroy", pid)
			}
			if _, err := os.Stat(st.Transcripts()); !os.IsNotExist(err) {
				t.Errorf("transcripts left after destroy: %v", err)
			}
		})
	})
}

// within reports whether path is dir or inside it.
func within(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
