package runner_test

// CI mode (`runner run`): apply, wait for every agent's command, print each
// pane's output, destroy, exit with the first failing status.

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runner-dev/runner/internal/state"
	"github.com/runner-dev/runner/runner"
)

// assertGone checks the run left no container and no state behind.
func assertGone(t *testing.T, te *testEngine, run string) {
	t.Helper()
	if ids := containerIDs(t, te, run); len(ids) != 0 {
		t.Errorf("run %s left containers: %v", run, ids)
	}
	st, err := state.ForRun(run)
	if err != nil {
		t.Fatal(err)
	}
	if st.Exists() {
		t.Errorf("run %s left its state directory %s", run, st.Dir())
	}
}

func TestRunJobPasses(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		run := runName(t, te, "jobok")
		destroyAtEnd(t, te, run)
		cfg, _ := writeConfig(t, teamConfig(run, te, map[string]string{
			"alpha": `["sh", "-c", "echo alpha-1; echo alpha-2"]`,
			"beta":  `["sh", "-c", "sleep 0.3; echo beta-done"]`,
		}))
		res, err := newRunner(te).RunJob(ctx(t), cfg, runner.JobOptions{Timeout: time.Minute})
		if err != nil {
			t.Fatalf("RunJob: %v", err)
		}
		if !res.Passed || res.ExitCode != 0 {
			t.Errorf("passed=%v exit=%d, want true 0: %+v", res.Passed, res.ExitCode, res.Agents)
		}
		var text bytes.Buffer
		res.WriteText(&text)
		for _, want := range []string{"alpha | alpha-1\nalpha | alpha-2\n", "beta | beta-done\n", "passed"} {
			if !strings.Contains(text.String(), want) {
				t.Errorf("text output lacks %q:\n%s", want, text.String())
			}
		}
		if strings.Contains(text.String(), "Pane is dead") {
			t.Errorf("tmux's dead-pane line is part of the output:\n%s", text.String())
		}
		var js struct {
			Run    string
			Passed bool
			Agents []struct {
				Agent      string
				ExitStatus *int     `json:"exit_status"`
				Signal     *int     `json:"signal"`
				DurationS  *float64 `json:"duration_s"`
				Output     string
			}
		}
		var buf bytes.Buffer
		res.WriteJSON(&buf)
		if err := json.Unmarshal(buf.Bytes(), &js); err != nil {
			t.Fatalf("JSON: %v\n%s", err, buf.String())
		}
		if js.Run != run || !js.Passed || len(js.Agents) != 2 || js.Agents[0].Agent != "alpha" ||
			js.Agents[0].ExitStatus == nil || *js.Agents[0].ExitStatus != 0 || js.Agents[0].Signal != nil ||
			js.Agents[0].DurationS == nil || js.Agents[1].Output != "beta-done" {
			t.Errorf("JSON summary:\n%s", buf.String())
		}
		assertGone(t, te, run)
	})
}

// junitDoc is the JUnit XML shape CI systems read.
type junitDoc struct {
	XMLName xml.Name `xml:"testsuites"`
	Suites  []struct {
		Name     string `xml:"name,attr"`
		Tests    int    `xml:"tests,attr"`
		Failures int    `xml:"failures,attr"`
		Cases    []struct {
			Name      string `xml:"name,attr"`
			Classname string `xml:"classname,attr"`
			Failure   *struct {
				Message string `xml:"message,attr"`
				Text    string `xml:",chardata"`
			} `xml:"failure"`
			SystemOut string `xml:"system-out"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func parseJUnit(t *testing.T, data []byte) junitDoc {
	t.Helper()
	var doc junitDoc
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("JUnit XML does not parse: %v\n%s", err, data)
	}
	if len(doc.Suites) != 1 {
		t.Fatalf("want one <testsuite>, got %d:\n%s", len(doc.Suites), data)
	}
	return doc
}

// A failing agent's status is the job's; the others' output is still there;
// JUnit has one case per agent and a failure for each failing one.
func TestRunJobFailurePropagates(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		run := runName(t, te, "jobfail")
		destroyAtEnd(t, te, run)
		cfg, _ := writeConfig(t, teamConfig(run, te, map[string]string{
			"bad":    `["sh", "-c", "echo bad; exit 3"]`,
			"good":   `["sh", "-c", "echo good-output"]`,
			"killed": `["sh", "-c", "echo dying; kill -9 $$"]`,
			"worse":  `["sh", "-c", "exit 5"]`,
		}))
		res, err := newRunner(te).RunJob(ctx(t), cfg, runner.JobOptions{Timeout: time.Minute})
		if err != nil {
			t.Fatalf("RunJob: %v", err)
		}
		if res.Passed || res.ExitCode != 3 {
			t.Errorf("passed=%v exit=%d, want false 3 (bad is the first failing agent by name)", res.Passed, res.ExitCode)
		}
		byName := map[string]runner.AgentResult{}
		for _, a := range res.Agents {
			byName[a.Agent] = a
		}
		if k := byName["killed"]; k.Signal == nil || *k.Signal != 9 || k.ExitStatus != nil || k.Code() != 1 {
			t.Errorf("killed: %+v, want signal 9, no status, code 1", k)
		}
		var text bytes.Buffer
		res.WriteText(&text)
		for _, want := range []string{"bad | bad\n", "good | good-output\n", "killed | dying\n", "FAIL", "exit status 5"} {
			if !strings.Contains(text.String(), want) {
				t.Errorf("text output lacks %q:\n%s", want, text.String())
			}
		}

		var x bytes.Buffer
		if err := res.WriteJUnit(&x); err != nil {
			t.Fatal(err)
		}
		doc := parseJUnit(t, x.Bytes())
		s := doc.Suites[0]
		if s.Name != run || s.Tests != 4 || s.Failures != 3 || len(s.Cases) != 4 {
			t.Fatalf("suite %q tests=%d failures=%d cases=%d, want %q 4 3 4:\n%s", s.Name, s.Tests, s.Failures, len(s.Cases), run, x.String())
		}
		for _, c := range s.Cases {
			if c.Classname != run {
				t.Errorf("case %s classname %q, want %q", c.Name, c.Classname, run)
			}
			switch c.Name {
			case "good":
				if c.Failure != nil {
					t.Errorf("good has a failure: %+v", c.Failure)
				}
			case "bad":
				if c.Failure == nil || !strings.Contains(c.Failure.Message, "3") || !strings.Contains(c.SystemOut, "bad") {
					t.Errorf("bad: failure %+v, system-out %q; want the status 3 and its output", c.Failure, c.SystemOut)
				}
			default:
				if c.Failure == nil {
					t.Errorf("%s has no failure", c.Name)
				}
			}
		}
		assertGone(t, te, run)
	})
}

func TestRunJobTimeout(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		run := runName(t, te, "jobto")
		destroyAtEnd(t, te, run)
		cfg, _ := writeConfig(t, teamConfig(run, te, map[string]string{
			"quick": `["sh", "-c", "echo quick-done"]`,
			"slow":  `["sh", "-c", "echo started-slow; sleep 60"]`,
		}))
		start := time.Now()
		// The timeout counts from the start of apply: long enough that quick
		// has ended by then on a loaded machine (3s was not, in CI).
		res, err := newRunner(te).RunJob(ctx(t), cfg, runner.JobOptions{Timeout: 12 * time.Second})
		took := time.Since(start)
		var te2 *runner.TimeoutError
		if !errors.As(err, &te2) {
			t.Fatalf("want a *runner.TimeoutError, got %v", err)
		}
		if res.ExitCode != runner.ExitTimeout || !res.TimedOut || res.Passed {
			t.Errorf("exit=%d timedOut=%v passed=%v, want 124 true false", res.ExitCode, res.TimedOut, res.Passed)
		}
		if len(te2.Running) != 1 || te2.Running[0] != "slow" || !strings.Contains(err.Error(), "slow") {
			t.Errorf("the error should name slow as still running: %v (running %v)", err, te2.Running)
		}
		if took > 60*time.Second {
			t.Errorf("a 12s timeout took %s to return", took)
		}
		var text bytes.Buffer
		res.WriteText(&text)
		for _, want := range []string{"slow | started-slow", "quick | quick-done", "TIMEOUT"} {
			if !strings.Contains(text.String(), want) {
				t.Errorf("text output lacks %q:\n%s", want, text.String())
			}
		}
		assertGone(t, te, run)
	})
}

// progressHook calls f once when a progress line contains substr.
type progressHook struct {
	mu     sync.Mutex
	substr string
	f      func()
	done   bool
}

func (p *progressHook) Write(b []byte) (int, error) {
	testWriter{}.Write(b)
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.done && bytes.Contains(b, []byte(p.substr)) {
		p.done = true
		go p.f()
	}
	return len(b), nil
}

// Cancelling the context (what SIGINT does to the CLI) stops and removes
// everything before RunJob returns.
func TestRunJobCancelCleansUp(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		run := runName(t, te, "jobint")
		destroyAtEnd(t, te, run)
		cfg, _ := writeConfig(t, teamConfig(run, te, map[string]string{
			"a": `["sh", "-c", "echo waiting-a; sleep 60"]`,
			"b": `["sleep", "60"]`,
		}))
		c, cancel := context.WithCancel(ctx(t))
		defer cancel()
		r := newRunner(te)
		r.Progress = &progressHook{substr: "waiting for their commands", f: func() {
			time.Sleep(300 * time.Millisecond)
			cancel()
		}}
		res, err := r.RunJob(c, cfg, runner.JobOptions{})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("want context.Canceled, got %v", err)
		}
		if !res.Stopped || res.Passed || !strings.Contains(err.Error(), "a, b") {
			t.Errorf("stopped=%v passed=%v err=%v; want an interrupted result naming a, b", res.Stopped, res.Passed, err)
		}
		if len(res.Agents) != 2 || res.Agents[0].Output != "waiting-a" {
			t.Errorf("the output so far should be kept: %+v", res.Agents)
		}
		assertGone(t, te, run)
	})
}

// A run that is applied is never adopted (and then destroyed) by a job.
func TestRunJobRefusesAppliedRun(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		run := runName(t, te, "jobdup")
		destroyAtEnd(t, te, run)
		cfg, _ := writeConfig(t, teamConfig(run, te, map[string]string{"a": `["sleep", "60"]`}))
		r := newRunner(te)
		if _, err := r.Apply(ctx(t), cfg); err != nil {
			t.Fatal(err)
		}
		before := containerIDs(t, te, run)
		res, err := r.RunJob(ctx(t), cfg, runner.JobOptions{Timeout: time.Minute})
		if !errors.Is(err, runner.ErrAlreadyApplied) || !strings.Contains(err.Error(), "already applied") || !strings.Contains(err.Error(), "destroy") {
			t.Fatalf("want ErrAlreadyApplied saying to destroy, got %v", err)
		}
		if res.ExitCode != runner.ExitJobFailed {
			t.Errorf("exit %d, want %d", res.ExitCode, runner.ExitJobFailed)
		}
		if after := containerIDs(t, te, run); len(after) != 1 || after["a"] != before["a"] {
			t.Errorf("the applied run was touched: before %v, after %v", before, after)
		}
	})
}

func runnerCmd(te *testEngine, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(bins, "runner"), args...)
	cmd.Env = append(os.Environ(), dockerHostEnv(te)...)
	return cmd
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	default:
		t.Fatalf("running runner: %v", err)
		return -1
	}
}

// The binary: exit code, prefixed output on stdout, progress on stderr, and
// a JUnit file.
func TestCLIRun(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		run := runName(t, te, "clirun")
		destroyAtEnd(t, te, run)
		_, path := writeConfig(t, fmt.Sprintf(`
variable "code" {
  default = "0"
}
run %q {
  %s
}
agent "ok" {
  image   = %q
  command = ["sh", "-c", "test -n \"$TOKEN\" && echo fine"]
  env     = { TOKEN = "s3cr3t-value" }
}
agent "check" {
  image   = %q
  command = ["sh", "-c", "echo checking; exit ${var.code}"]
}
`, run, te.accept, testImage, testImage))
		junit := filepath.Join(t.TempDir(), "junit.xml")
		cmd := runnerCmd(te, "run", path, "-var", "code=7", "--timeout", "2m", "--junit-file", junit)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		code := exitCode(t, cmd.Run())
		if code != 7 {
			t.Errorf("exit %d, want 7 (check's status)\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
		}
		for _, want := range []string{"check | checking\n", "ok | fine\n"} {
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
			}
		}
		if strings.Contains(stdout.String(), "creating") || !strings.Contains(stderr.String(), "creating") {
			t.Errorf("progress belongs on stderr:\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
		}
		data, err := os.ReadFile(junit)
		if err != nil {
			t.Fatalf("--junit-file: %v", err)
		}
		if all := stdout.String() + stderr.String() + string(data); strings.Contains(all, "s3cr3t-value") {
			t.Errorf("an env value was printed:\n%s", all)
		}
		if s := parseJUnit(t, data).Suites[0]; s.Tests != 2 || s.Failures != 1 {
			t.Errorf("junit file: tests=%d failures=%d, want 2 1:\n%s", s.Tests, s.Failures, data)
		}
		assertGone(t, te, run)

		// -o json on a passing job: exit 0, stdout is only JSON.
		cmd = runnerCmd(te, "run", path, "-o", "json")
		out, err := cmd.Output()
		if code := exitCode(t, err); code != 0 {
			t.Errorf("passing job: exit %d\n%s", code, out)
		}
		var js struct {
			Passed bool
			Agents []json.RawMessage
		}
		if err := json.Unmarshal(out, &js); err != nil || !js.Passed || len(js.Agents) != 2 {
			t.Errorf("-o json: %v passed=%v agents=%d\n%s", err, js.Passed, len(js.Agents), out)
		}
		assertGone(t, te, run)
	})
}

// SIGINT and SIGTERM to `runner run`: everything is removed, then it exits
// 130 or 143.
func TestCLIRunSignals(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		for _, tc := range []struct {
			sig  syscall.Signal
			code int
		}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
			t.Run(tc.sig.String(), func(t *testing.T) {
				run := runName(t, te, "clisig")
				destroyAtEnd(t, te, run)
				_, path := writeConfig(t, teamConfig(run, te, map[string]string{
					"a": `["sh", "-c", "echo a-is-up; sleep 60"]`,
				}))
				cmd := runnerCmd(te, "run", path)
				var stdout bytes.Buffer
				cmd.Stdout = &stdout
				stderr, err := cmd.StderrPipe()
				if err != nil {
					t.Fatal(err)
				}
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				var errLog bytes.Buffer
				started := make(chan struct{})
				copied := make(chan struct{})
				go func() {
					defer close(copied)
					buf := make([]byte, 4096)
					once := sync.Once{}
					for {
						n, err := stderr.Read(buf)
						errLog.Write(buf[:n])
						if bytes.Contains(errLog.Bytes(), []byte("waiting for their commands")) {
							once.Do(func() { close(started) })
						}
						if err != nil {
							if err != io.EOF {
								t.Log(err)
							}
							return
						}
					}
				}()
				select {
				case <-started:
				case <-time.After(2 * time.Minute):
					cmd.Process.Kill()
					t.Fatalf("the job did not start:\n%s", errLog.String())
				}
				time.Sleep(200 * time.Millisecond)
				sent := time.Now()
				cmd.Process.Signal(tc.sig)
				<-copied
				code := exitCode(t, cmd.Wait())
				if code != tc.code {
					t.Errorf("exit %d after %s, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.sig, tc.code, stdout.String(), errLog.String())
				}
				if time.Since(sent) > 30*time.Second {
					t.Errorf("took %s to clean up after %s", time.Since(sent), tc.sig)
				}
				if !strings.Contains(stdout.String(), "a | a-is-up") {
					t.Errorf("the output so far should be printed:\n%s", stdout.String())
				}
				assertGone(t, te, run)
			})
		}
	})
}

// The shipped example passes, and writes its report where the README says
// once out/ is writable.
func TestCLIRunExample(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		src, err := filepath.Abs("../examples/ci")
		if err != nil {
			t.Fatal(err)
		}
		tmp, err := os.MkdirTemp("", "runner-e2e-example-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(tmp) })
		os.Chmod(tmp, 0o755) // reachable by a rootless daemon's uid
		dir := filepath.Join(tmp, "ci")
		if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
			t.Fatal(err)
		}
		// CopyFS leaves 0755 directories and 0644/0755 files, readable by a
		// rootless daemon's uid; out/ is made writable as the README says.
		os.RemoveAll(filepath.Join(dir, "out"))
		os.Mkdir(filepath.Join(dir, "out"), 0o777)
		os.Chmod(filepath.Join(dir, "out"), 0o777)
		hcl, err := os.ReadFile(filepath.Join(dir, "job.hcl"))
		if err != nil {
			t.Fatal(err)
		}
		// A run name of its own, so a user's or a parallel suite's job of the
		// example never collides with this one.
		run := runName(t, te, "example")
		destroyAtEnd(t, te, run)
		patched := strings.Replace(string(hcl), `run "ci-example" {`, fmt.Sprintf("run %q {", run), 1)
		if patched == string(hcl) {
			t.Fatal(`examples/ci/job.hcl no longer has run "ci-example"`)
		}
		os.WriteFile(filepath.Join(dir, "job.hcl"), []byte(patched), 0o644)
		args := []string{"run", filepath.Join(dir, "job.hcl"), "-var", "image=" + testImage}
		if te.accept != "" {
			args = append(args, "-var", `accept_unenforced=["memory","cpus","pids"]`)
		}
		cmd := runnerCmd(te, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if code := exitCode(t, cmd.Run()); code != 0 {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
		}
		for _, want := range []string{"tests | ok 1 - ", "tests | # report written to /out/report.tap", "lint | lint: "} {
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
			}
		}
		report, err := os.ReadFile(filepath.Join(dir, "out", "report.tap"))
		if err != nil || !strings.Contains(string(report), "0 failed") {
			t.Errorf("report.tap: %v\n%s", err, report)
		}
		assertGone(t, te, run)
	})
}
