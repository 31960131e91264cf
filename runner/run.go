package runner

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/termsafe"
)

// Exit codes of a job besides the agents' own statuses (the conventions of
// timeout(1) and docker run).
const (
	ExitTimeout   = 124 // the job's timeout expired
	ExitJobFailed = 125 // the runner could not run the job or clean it up
	ExitSIGINT    = 130
	ExitSIGTERM   = 143
)

// JobOptions tunes RunJob.
type JobOptions struct {
	// Timeout bounds the job from the start of apply until every agent's
	// command has exited; 0 means no limit. Cleanup is not counted.
	Timeout time.Duration
	// PollMin and PollMax bound the backoff between two reads of the panes'
	// states (defaults 100ms and 1s).
	PollMin, PollMax time.Duration
	// Heartbeat is how often progress names the agents still running
	// (default 1m), so a CI log shows the job is alive.
	Heartbeat time.Duration
}

// Agent states in a JobResult.
const (
	AgentExited  = "exited"  // the command exited (or was killed by a signal)
	AgentRunning = "running" // still running when the job timed out or was interrupted
	AgentLost    = "lost"    // its container or pane could not be read any more
)

// AgentResult is what one agent's command did.
type AgentResult struct {
	Agent      string        `json:"agent"`
	State      string        `json:"state"`
	ExitStatus *int          `json:"exit_status"`
	Signal     *int          `json:"signal"`
	Duration   time.Duration `json:"-"`
	DurationS  float64       `json:"duration_s"`
	// Output is the pane's whole scrollback (what the command printed),
	// control characters stripped, without tmux's "Pane is dead" line.
	Output string `json:"output"`
	Error  string `json:"error,omitempty"`

	started  time.Time // when its container started
	captured bool      // Output is the pane's final scrollback
}

// Passed reports whether the command exited with status 0.
func (a AgentResult) Passed() bool {
	return a.State == AgentExited && a.ExitStatus != nil && *a.ExitStatus == 0
}

// Code is the process exit code the agent stands for: its status, or 1 when
// a signal killed it or it did not finish.
func (a AgentResult) Code() int {
	switch {
	case a.Passed():
		return 0
	case a.State == AgentExited && a.ExitStatus != nil:
		return *a.ExitStatus
	default:
		return 1
	}
}

// Outcome says in a few words how the agent ended.
func (a AgentResult) Outcome() string {
	switch {
	case a.State == AgentRunning:
		return "still running"
	case a.State == AgentLost:
		return "lost: " + a.Error
	case a.ExitStatus != nil:
		return fmt.Sprintf("exit status %d", *a.ExitStatus)
	case a.Signal != nil:
		return fmt.Sprintf("killed by signal %d (%s)", *a.Signal, syscall.Signal(*a.Signal))
	default:
		return "exited"
	}
}

// JobResult is the outcome of RunJob, agents sorted by name.
type JobResult struct {
	Run       string        `json:"run"`
	Agents    []AgentResult `json:"agents"`
	Passed    bool          `json:"passed"`
	ExitCode  int           `json:"exit_code"`
	TimedOut  bool          `json:"timed_out,omitempty"`
	Stopped   bool          `json:"interrupted,omitempty"`
	Duration  time.Duration `json:"-"`
	DurationS float64       `json:"duration_s"`
}

// TimeoutError is RunJob's error when JobOptions.Timeout expired.
type TimeoutError struct {
	Run     string
	Timeout time.Duration
	Running []string // agents whose command had not exited
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("run %q timed out after %s with agents still running: %s; every container was stopped and removed",
		e.Run, e.Timeout, strings.Join(e.Running, ", "))
}

// ErrAlreadyApplied is matched (errors.Is) by RunJob's error when the run
// already has containers or another job of the same run is in progress.
var ErrAlreadyApplied = errors.New("run already applied")

type alreadyApplied struct{ msg string }

func (e *alreadyApplied) Error() string        { return e.msg }
func (e *alreadyApplied) Is(target error) bool { return target == ErrAlreadyApplied }

var errJobTimeout = errors.New("job timeout")

// RunJob runs cfg as a CI job: it applies the run, waits until every agent's
// command has exited (for good: an agent that sets restart is restarted by
// its policy, one that does not is never restarted; see jobConfig),
// captures each pane's scrollback, and destroys the run
// (containers, relay, state) whatever happened. The run's name comes from
// the file, so it refuses a run that already has containers rather than
// adopting (and then destroying) them.
//
// The error is nil when every command exited, whether or not they passed:
// see JobResult.Passed and ExitCode. It is a *TimeoutError when the timeout
// expired and wraps ctx's error when ctx was cancelled; in both cases the
// result still holds what the agents printed so far, and everything has been
// cleaned up with a context of its own.
func (r *Runner) RunJob(ctx context.Context, cfg *config.Config, opts JobOptions) (JobResult, error) {
	start := time.Now()
	cfg = jobConfig(cfg)
	run := cfg.Run.Name
	res := JobResult{Run: run, ExitCode: ExitJobFailed}
	unlock, err := r.lockJob(run)
	if err != nil {
		return res, err
	}
	defer unlock()
	ctx, unlockRun, err := r.lockRun(ctx, run, "run", cfg.File)
	if err != nil {
		return res, err
	}
	defer unlockRun()
	existing, err := r.Engine.List(ctx, run)
	if err != nil {
		return res, err
	}
	if len(existing) > 0 {
		return res, &alreadyApplied{fmt.Sprintf("run %q is already applied (%d containers on %s); destroy it (`runner destroy %s`) or use another run name",
			run, len(existing), r.Engine.Describe(), cfg.File)}
	}

	jobCtx, cancel := context.WithCancel(ctx)
	if opts.Timeout > 0 {
		jobCtx, cancel = context.WithTimeoutCause(ctx, opts.Timeout, errJobTimeout)
	}
	defer cancel()

	agents := make([]string, 0, len(cfg.Agents))
	for _, a := range cfg.Agents {
		agents = append(agents, a.Name)
	}
	sort.Strings(agents)
	results := make(map[string]*AgentResult, len(agents))
	for _, a := range agents {
		results[a] = &AgentResult{Agent: a, State: AgentRunning, started: start}
	}

	var runErr error
	applied, err := r.Apply(jobCtx, cfg)
	if err != nil {
		runErr = err
	} else {
		r.progress("job: %s started after %s; waiting for their commands to exit", agentsN(len(agents)), since(start))
		runErr = r.waitAgents(jobCtx, applied.IDs, agents, results, opts)
	}

	// Everything below must happen even if ctx was cancelled.
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer ccancel()
	// A job whose commands all exited keeps its result even if the signal
	// or the deadline came during the capture.
	interrupted := runErr != nil && ctx.Err() != nil
	timedOut := runErr != nil && !interrupted && errors.Is(context.Cause(jobCtx), errJobTimeout)
	var running []string
	if runErr == nil || interrupted || timedOut {
		r.captureAll(cctx, applied.IDs, results)
		for _, a := range agents {
			ar := results[a]
			if ar.State == AgentRunning {
				running = append(running, a)
				ar.Duration = time.Since(ar.started)
			}
			ar.DurationS = ar.Duration.Round(time.Millisecond).Seconds()
			res.Agents = append(res.Agents, *ar)
		}
	}
	r.progress("job: destroying run %q...", run)
	_, derr := r.Destroy(cctx, run)
	res.Duration = time.Since(start)
	res.DurationS = res.Duration.Round(time.Millisecond).Seconds()

	switch {
	case interrupted:
		res.Stopped, res.ExitCode = true, ExitSIGINT
		runErr = fmt.Errorf("run %q interrupted with agents still running: %s; every container was stopped and removed: %w", run, orNone(running), ctx.Err())
		if cause := context.Cause(ctx); cause != nil && cause != ctx.Err() {
			runErr = fmt.Errorf("%w (%w)", runErr, cause)
		}
	case timedOut:
		res.TimedOut, res.ExitCode = true, ExitTimeout
		runErr = &TimeoutError{Run: run, Timeout: opts.Timeout, Running: running}
	case runErr != nil:
		res.ExitCode = ExitJobFailed
	default:
		res.Passed, res.ExitCode = true, 0
		for _, a := range res.Agents {
			if !a.Passed() {
				res.Passed, res.ExitCode = false, a.Code()
				break
			}
		}
	}
	if derr != nil {
		res.ExitCode = ExitJobFailed
		derr = fmt.Errorf("cleaning up run %q failed (see `runner status %s`, then `runner destroy %s`): %w", run, cfg.File, cfg.File, derr)
		return res, errors.Join(runErr, derr)
	}
	r.progress("job: run %q removed after %s", run, since(start))
	return res, runErr
}

func containersN(n int) string {
	if n == 1 {
		return "1 container"
	}
	return strconv.Itoa(n) + " containers"
}

func agentsN(n int) string {
	if n == 1 {
		return "1 agent"
	}
	return strconv.Itoa(n) + " agents"
}

func orNone(ss []string) string {
	if len(ss) == 0 {
		return "none"
	}
	return strings.Join(ss, ", ")
}

// jobConfig is cfg as a job runs it: an agent whose file does not set
// restart is never restarted, since a job's failure is its result (the
// default, on-failure, would run a failing job again and again). One that
// sets it is restarted by its policy, and the job waits for the last run.
func jobConfig(cfg *config.Config) *config.Config {
	c := *cfg
	c.Agents = slices.Clone(cfg.Agents)
	for i := range c.Agents {
		if !c.Agents[i].RestartSet {
			c.Agents[i].Restart = config.RestartNever
		}
	}
	return &c
}

// maxPollErrors is how many reads of a running container's pane may fail in
// a row before the agent is reported lost (about 20s at the slowest pace).
const maxPollErrors = 20

// waitAgents polls every agent whose command has not exited, all at once,
// with a backoff from PollMin to PollMax, until none is left or ctx ends.
func (r *Runner) waitAgents(ctx context.Context, ids map[string]string, agents []string, results map[string]*AgentResult, opts JobOptions) error {
	minD, maxD, beat := opts.PollMin, opts.PollMax, opts.Heartbeat
	if minD <= 0 {
		minD = 100 * time.Millisecond
	}
	if maxD < minD {
		maxD = max(minD, time.Second)
	}
	if beat <= 0 {
		beat = time.Minute
	}
	var mu sync.Mutex
	inspected := map[string]bool{}
	failures := map[string]int{}
	pending := append([]string(nil), agents...)
	delay := minD
	lastBeat := time.Now()
	for len(pending) > 0 {
		r.forEach(pending, func(a string) {
			ar := results[a]
			mu.Lock()
			first := !inspected[a]
			inspected[a] = true
			mu.Unlock()
			// The first time, the container's StartedAt (when the command
			// began, not when apply returned) is read alongside.
			var (
				obs  engine.Observed
				ierr = errors.New("not inspected")
				wg   sync.WaitGroup
			)
			if first {
				wg.Add(1)
				go func() {
					defer wg.Done()
					obs, ierr = r.Engine.Inspect(ctx, ids[a])
				}()
			}
			ps, err := r.paneState(ctx, ids[a])
			now := time.Now()
			wg.Wait()
			if first && ierr == nil && !obs.StartedAt.IsZero() {
				mu.Lock()
				ar.started = obs.StartedAt
				mu.Unlock()
			}
			if err != nil && ctx.Err() == nil && !first {
				obs, ierr = r.Engine.Inspect(ctx, ids[a])
			}
			// Capture as soon as the command exited, while others still run.
			var out string
			captured := false
			done := err == nil && ps.PaneDead && !ps.Restarting
			if done {
				out, captured = r.capture(ctx, ids[a])
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil && ctx.Err() != nil:
			case err != nil:
				failures[a]++
				r.log().Debug("reading the pane failed", "agent", a, "error", err)
				if ierr == nil && obs.State != "running" {
					ar.State, ar.Duration = AgentLost, now.Sub(ar.started)
					ar.Error = fmt.Sprintf("container %s (exit code %d) before the agent's command exited", obs.State, obs.ExitCode)
					r.progress("%s: %s", a, ar.Error)
				} else if failures[a] >= maxPollErrors {
					ar.State, ar.Duration = AgentLost, now.Sub(ar.started)
					ar.Error = fmt.Sprintf("its pane could not be read %d times in a row: %v", failures[a], err)
					r.progress("%s: %s", a, ar.Error)
				}
			case done:
				ar.State, ar.Duration = AgentExited, now.Sub(ar.started)
				ar.ExitStatus, ar.Signal = ps.ExitStatus, ps.ExitSignal
				ar.Output, ar.captured = out, captured
				r.progress("%s: %s after %s", a, ar.Outcome(), ar.Duration.Round(10*time.Millisecond))
			default:
				failures[a] = 0
			}
		})
		next := pending[:0]
		for _, a := range pending {
			if results[a].State == AgentRunning {
				next = append(next, a)
			}
		}
		pending = next
		if len(pending) == 0 {
			return nil
		}
		if time.Since(lastBeat) >= beat {
			lastBeat = time.Now()
			r.progress("job: still running: %s", strings.Join(pending, ", "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, maxD)
	}
	return nil
}

// forEach runs f for every agent, at most r.parallelism() at once.
func (r *Runner) forEach(agents []string, f func(string)) {
	r.forEachIndex(len(agents), func(i int) { f(agents[i]) })
}

// forEachIndex runs f(0..n-1), at most r.parallelism() at once.
func (r *Runner) forEachIndex(n int, f func(int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, r.parallelism())
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			f(i)
		}()
	}
	wg.Wait()
}

// captureAll reads the scrollback of every agent not captured yet (still
// running, or lost).
func (r *Runner) captureAll(ctx context.Context, ids map[string]string, results map[string]*AgentResult) {
	var names []string
	for a, ar := range results {
		if ids[a] != "" && !ar.captured {
			names = append(names, a)
		}
	}
	var mu sync.Mutex
	r.forEach(names, func(a string) {
		text, _ := r.capture(ctx, ids[a])
		mu.Lock()
		results[a].Output = text
		mu.Unlock()
	})
}

// capture reads an agent's whole scrollback; for a container that is gone or
// unreadable it falls back to the engine's log of init (ok is then false).
func (r *Runner) capture(ctx context.Context, id string) (text string, ok bool) {
	out, err := r.captureText(ctx, id, 0, false)
	if err == nil {
		return cleanScrollback(out), true
	}
	logs, lerr := r.Engine.Logs(ctx, id, 50)
	if lerr != nil {
		r.log().Warn("cannot read the agent's output", "container", shortID(id), "error", err)
	}
	if errors.Is(err, errForged) {
		logs += "\n[runner: the pane's capture was rejected: " + err.Error() + "]"
	}
	return strings.TrimRight(termsafe.Text(logs), "\n"), false
}

// cleanScrollback drops tmux's "Pane is dead (...)" line and the blank
// screen lines above it.
func cleanScrollback(s string) string {
	s = strings.TrimRight(s, " \n")
	if i := strings.LastIndexByte(s, '\n'); strings.HasPrefix(s[i+1:], "Pane is dead (") {
		s = strings.TrimRight(s[:i+1], " \n")
	}
	return s
}

// lockJob holds an exclusive lock for the run's job in the state root, so two
// `runner run` of one file on this host cannot both pass the "already
// applied" check. The lock file is removed on release; the inode check makes
// a waiter that opened a removed file try again.
func (r *Runner) lockJob(run string) (func(), error) {
	st, err := r.runState(run)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(st.Root, "runs")
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, fmt.Errorf("creating state directory %s: %w (set RUNNER_STATE_DIR to a writable place)", dir, err)
	}
	path := filepath.Join(dir, "."+run+".job.lock")
	for {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return nil, fmt.Errorf("job lock %s: %w", path, err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, &alreadyApplied{fmt.Sprintf("run %q is already applied by another `runner run` on this host (it holds %s); wait for it or use another run name", run, path)}
			}
			return nil, fmt.Errorf("job lock %s: %w", path, err)
		}
		var a, b syscall.Stat_t
		if syscall.Fstat(int(f.Fd()), &a) == nil && syscall.Stat(path, &b) == nil && a.Ino == b.Ino && a.Dev == b.Dev {
			return func() {
				os.Remove(path)
				f.Close()
			}, nil
		}
		f.Close()
	}
}

// WriteText prints every agent's output, each line prefixed "AGENT | ", then
// one line per agent and the verdict.
func (res JobResult) WriteText(w io.Writer) error {
	var b strings.Builder
	for _, a := range res.Agents {
		if a.Output == "" {
			continue
		}
		for line := range strings.SplitSeq(a.Output, "\n") {
			b.WriteString(a.Agent)
			b.WriteString(" | ")
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	if len(res.Agents) > 0 {
		b.WriteByte('\n')
	}
	width := 0
	for _, a := range res.Agents {
		width = max(width, len(a.Agent))
	}
	failed := 0
	for _, a := range res.Agents {
		mark := "PASS"
		switch {
		case a.State == AgentRunning && res.TimedOut:
			mark = "TIMEOUT"
		case a.State == AgentRunning:
			mark = "STOPPED"
		case !a.Passed():
			mark = "FAIL"
		}
		if mark != "PASS" {
			failed++
		}
		fmt.Fprintf(&b, "%-7s  %-*s  %s after %s\n", mark, width, a.Agent, a.Outcome(), a.Duration.Round(10*time.Millisecond))
	}
	switch {
	case res.Passed:
		fmt.Fprintf(&b, "\nRun %q passed: %s exited 0 in %s.\n", res.Run, agentsN(len(res.Agents)), res.Duration.Round(10*time.Millisecond))
	case res.TimedOut:
		fmt.Fprintf(&b, "\nRun %q timed out after %s (exit %d).\n", res.Run, res.Duration.Round(10*time.Millisecond), res.ExitCode)
	case res.Stopped:
		fmt.Fprintf(&b, "\nRun %q was interrupted after %s (exit %d).\n", res.Run, res.Duration.Round(10*time.Millisecond), res.ExitCode)
	case len(res.Agents) > 0:
		fmt.Fprintf(&b, "\nRun %q failed: %d of %d agents did not exit 0 (exit %d).\n", res.Run, failed, len(res.Agents), res.ExitCode)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON prints the result as one indented JSON document.
func (res JobResult) WriteJSON(w io.Writer) error {
	if res.Agents == nil {
		res.Agents = []AgentResult{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(res)
}

// JUnit XML, as Jenkins, GitLab and GitHub test reporters read it.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Errors    int         `xml:"errors,attr"`
	Skipped   int         `xml:"skipped,attr"`
	Time      string      `xml:"time,attr"`
	Timestamp string      `xml:"timestamp,attr,omitempty"`
	Cases     []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	Error     *junitFailure `xml:"error,omitempty"`
	SystemOut *junitText    `xml:"system-out,omitempty"`
}

// junitText is CDATA so the output reads as it was printed.
type junitText struct {
	Text string `xml:",cdata"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// JUnitTail is how many of an agent's last output lines go into <system-out>.
const JUnitTail = 200

// WriteJUnit prints the result as JUnit XML: one <testsuite> named after the
// run, one <testcase> per agent (classname = the run), a <failure> with the
// exit status for an agent that did not exit 0 (an <error> for one that was
// lost), and the tail of its output in <system-out>.
func (res JobResult) WriteJUnit(w io.Writer) error {
	suite := junitSuite{Name: res.Run, Tests: len(res.Agents), Time: seconds(res.Duration)}
	if res.Duration > 0 {
		suite.Timestamp = time.Now().Add(-res.Duration).UTC().Format("2006-01-02T15:04:05")
	}
	for _, a := range res.Agents {
		c := junitCase{Name: a.Agent, Classname: res.Run, Time: seconds(a.Duration)}
		if a.Output != "" {
			c.SystemOut = &junitText{Text: xmlSafe(lastLines(a.Output, JUnitTail))}
		}
		switch {
		case a.Passed():
		case a.State == AgentLost:
			suite.Errors++
			c.Error = &junitFailure{Message: xmlSafe(a.Outcome()), Type: "lost"}
		case a.State == AgentRunning:
			suite.Failures++
			typ, why := "timeout", "timed out"
			if !res.TimedOut {
				typ, why = "interrupted", "interrupted"
			}
			c.Failure = &junitFailure{Message: fmt.Sprintf("still running when the job %s after %s", why, res.Duration.Round(time.Second)), Type: typ}
		default:
			suite.Failures++
			c.Failure = &junitFailure{Message: a.Outcome(), Type: "exit", Text: fmt.Sprintf("%s: %s; the job exits %d", a.Agent, a.Outcome(), a.Code())}
		}
		suite.Cases = append(suite.Cases, c)
	}
	doc := junitSuites{Name: "runner", Tests: suite.Tests, Failures: suite.Failures, Errors: suite.Errors, Time: suite.Time, Suites: []junitSuite{suite}}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// xmlSafe replaces what XML 1.0 cannot carry (most control characters,
// invalid UTF-8) with U+FFFD.
func xmlSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			return r
		case r < 0x20, r == utf8.RuneError, r >= 0xD800 && r <= 0xDFFF, r == 0xFFFE, r == 0xFFFF:
			return utf8.RuneError
		}
		return r
	}, s)
}

func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 3, 64)
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) <= n {
		return s
	}
	return fmt.Sprintf("[%d earlier lines omitted]\n", len(lines)-n) + strings.Join(lines[len(lines)-n:], "\n")
}
