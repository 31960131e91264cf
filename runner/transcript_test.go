package runner_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
// appears in /tmp/say, and N numbered lines when /tmp/flood appears
// holding N.
const transcriptAgent = `printf 'first \033[31mred-marker\033[0m line\n'
echo SECRET-BEFORE-CLEAR
while [ ! -e /tmp/clear ]; do sleep 0.1; done
printf '\033[2J\033[3J\033[H'
echo AFTER-CLEAR
while :; do
  if [ -e /tmp/say ]; then cat /tmp/say; rm -f /tmp/say; fi
  if [ -e /tmp/flood ]; then n=$(cat /tmp/flood); rm -f /tmp/flood; seq 1 "$n"; echo "FLOOD-END-$n"; fi
  sleep 0.1
done`

func TestTranscript(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		// Inherited by the recorder apply starts: a small cap, to see it
		// fill segments (of 16 KiB) and then drop the oldest.
		const capBytes = 256 << 10
		t.Setenv(transcript.EnvMax, "256KiB")
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
					t.Fatalf("logs never showed %q (%v); they show:\n%s\nhost services log:\n%s", want, err, b.String(), readFile(st.ServicesLog()))
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
				case src == st.Cred("alice") || src == st.AgentRelayDir("alice"):
					// its credential and its own relay socket's directory
				case within(st.Transcripts(), src) || within(src, st.Transcripts()):
					t.Errorf("mount %s -> %s reaches the transcripts in %s", m.Source, m.Destination, st.Transcripts())
				case within(st.Private(), src) || within(src, st.Private()):
					t.Errorf("mount %s -> %s reaches the private directory %s", m.Source, m.Destination, st.Private())
				}
			}
			path := transcript.Dir(st.Transcripts(), "alice")
			if _, err := os.Stat(transcript.SegmentPath(st.Transcripts(), "alice", 1)); err != nil {
				t.Fatalf("transcript on the host: %v", err)
			}
			for _, p := range []string{path, st.Transcripts(), st.Private()} {
				res, err := te.eng.Exec(ctx(t), id, "", []string{"sh", "-c", `test -e "$1"`, "sh", p})
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

		segmentFiles := func(t *testing.T) (int64, []string) {
			t.Helper()
			dir := transcript.Dir(st.Transcripts(), "alice")
			if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
				t.Errorf("%s: %v, want mode 0700", dir, err)
			}
			ents, err := os.ReadDir(dir)
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
			return total, names
		}
		verify := func(t *testing.T) (string, error) {
			t.Helper()
			cmd := exec.Command(filepath.Join(bins, "runner"), "logs", file, "alice", "--verify")
			cmd.Env = append(os.Environ(), "DOCKER_HOST="+te.info.Endpoint)
			out, err := cmd.CombinedOutput()
			return string(out), err
		}

		// The old transcript kept two files of half the cap each, so output
		// past half of it began to erase the oldest. Segments of a
		// sixteenth of it are kept up to the whole cap.
		t.Run("segments-keep-earlier-text", func(t *testing.T) {
			inContainer("echo 20000 > /tmp/flood.new && mv /tmp/flood.new /tmp/flood")
			out := waitLogs("FLOOD-END-20000\n") // the line whole: the marker can arrive before its newline
			if !strings.Contains(out, "\n19999\n20000\nFLOOD-END-20000\n") {
				t.Errorf("the newest output is not all there: ...%q", out[max(0, len(out)-200):])
			}
			if !strings.HasPrefix(out, "first red-marker line\nSECRET-BEFORE-CLEAR\n") || strings.Contains(out, "[runner:") {
				t.Errorf("the earliest output is gone after %d bytes of output: %q...", len(out), out[:min(len(out), 200)])
			}
			total, names := segmentFiles(t)
			if len(names) < 4 || total > capBytes {
				t.Errorf("transcript uses %d bytes in %v: want several segments within the cap of %d", total, names, capBytes)
			}
			if got, err := verify(t); err != nil || !strings.Contains(got, "✓ alice's transcript") || strings.Contains(got, "dropped") {
				t.Errorf("logs --verify: %v\n%s", err, got)
			}
		})

		t.Run("total-cap-drops-and-says-so", func(t *testing.T) {
			inContainer("echo 40000 > /tmp/flood.new && mv /tmp/flood.new /tmp/flood")
			out := waitLogs("FLOOD-END-40000\n")
			if !strings.Contains(out, "\n39999\n40000\nFLOOD-END-40000\n") {
				t.Errorf("the newest output is not all there: ...%q", out[max(0, len(out)-200):])
			}
			if strings.Contains(out, "SECRET-BEFORE-CLEAR") {
				t.Error("the oldest output survived output of more than the cap")
			}
			notice := regexp.MustCompile(`^\[runner: [0-9.]+ KiB of earlier output, recorded \S+ to \S+, was dropped to keep this transcript within its cap \(RUNNER_TRANSCRIPT_MAX\)\]\n`)
			if !notice.MatchString(out) {
				t.Errorf("logs do not begin by saying output was dropped: %q", out[:min(len(out), 300)])
			}
			// Only the oldest segments go: nearly the whole cap is kept (the
			// old two files kept as little as half of it).
			if total, names := segmentFiles(t); total > capBytes || total < capBytes-2*transcript.SegmentCap(capBytes) {
				t.Errorf("transcript uses %d bytes in %v, want close to the cap of %d and not over it", total, names, capBytes)
			}
			got, err := verify(t)
			if err != nil || !strings.Contains(got, "hash chain intact") || !regexp.MustCompile(`[0-9]+ bytes of earlier output \(segments 1 to [0-9]+, recorded .*\) were dropped at the cap`).MatchString(got) {
				t.Errorf("logs --verify: %v\n%s", err, got)
			}
		})

		t.Run("tampered-segment-fails-verify", func(t *testing.T) {
			_, names := segmentFiles(t)
			if len(names) < 3 {
				t.Fatalf("segments %v: want at least 3", names)
			}
			// A segment between the oldest and the newest: the recorder
			// neither writes nor drops it while the agent is quiet.
			victim := filepath.Join(transcript.Dir(st.Transcripts(), "alice"), names[1])
			orig, err := os.ReadFile(victim)
			if err != nil {
				t.Fatal(err)
			}
			i := bytes.Index(orig, []byte(`"b":"`))
			if i < 0 {
				t.Fatalf("no output record in %s", victim)
			}
			edited := bytes.Clone(orig)
			// One base64 digit: the JSON still reads.
			if edited[i+5] == 'A' {
				edited[i+5] = 'B'
			} else {
				edited[i+5] = 'A'
			}
			if err := os.WriteFile(victim, edited, 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := verify(t)
			if err == nil || !strings.Contains(got, "✗ alice's transcript: "+victim+" line ") || !strings.Contains(got, "hash does not match") {
				t.Errorf("logs --verify on a tampered segment: %v\n%s", err, got)
			}
			if err := os.WriteFile(victim, orig, 0o600); err != nil {
				t.Fatal(err)
			}
			if got, err := verify(t); err != nil {
				t.Errorf("logs --verify after undoing the edit: %v\n%s", err, got)
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
				end := strings.Index(out, "FLOOD-END-40000")
				if end >= 0 && strings.Contains(out[end:], "SECRET-BEFORE-CLEAR") {
					if strings.Contains(out, "OCI runtime") || strings.Contains(out, "exec failed") {
						t.Errorf("an engine message got into the transcript: %q", out[end:])
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the new container's output never followed the old one's: ...%q\nhost services log:\n%s", out[max(0, len(out)-300):], readFile(st.ServicesLog()))
				}
				time.Sleep(100 * time.Millisecond)
			}
		})

		t.Run("destroy-stops-recorder", func(t *testing.T) {
			b, err := os.ReadFile(st.ServicesPID())
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
