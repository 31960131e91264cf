package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/names"
	"github.com/runner-dev/runner/internal/shim"
	"github.com/runner-dev/runner/internal/state"
	"github.com/runner-dev/runner/internal/termsafe"
	"github.com/runner-dev/runner/internal/transcript"
)

// Transcripts: every run has a recorder, a process of its own on the host
// (`runner record serve ROOT RUN`, started by apply next to the relay,
// restarted by apply if it died, stopped by destroy). It lists the run's
// containers every few seconds (and when apply signals it), runs
// `runner-agent stream` in each running one through the engine's exec API,
// and appends what it reads to that agent's transcript in the run's private
// directory (see internal/transcript for the files and their format). No
// container mounts that directory, so an agent can add to its transcript
// only by printing, and cannot touch what it printed before. A container
// that restarts or is replaced goes on with the same agent's transcript.

// recordInterval is how often the recorder looks for new containers.
const recordInterval = 2 * time.Second

// ensureRecorder starts the run's recorder unless it is running. It talks
// to the engine apply uses: DOCKER_HOST is set to its endpoint, the rest of
// the environment (TLS settings, RUNNER_TRANSCRIPT_MAX) is inherited.
func (r *Runner) ensureRecorder(ctx context.Context, st state.Run, info engine.Info) error {
	if livePID(st.RecordPID()) > 0 {
		return nil
	}
	if _, err := transcript.MaxFromEnv(); err != nil {
		return err
	}
	var env []string
	if info.Name == "docker" && info.Endpoint != "" {
		env = []string{"DOCKER_HOST=" + info.Endpoint}
	}
	// It writes its pid file once it has reached the engine.
	pid, err := r.startDaemon(ctx, daemon{
		name: "transcript recorder", sub: []string{"record", "serve"}, pidFile: st.RecordPID(), logFile: st.RecordLog(), env: env,
		ready: func(pid int) bool { return livePID(st.RecordPID()) == pid },
	}, st.Root, st.Name)
	if err != nil {
		return err
	}
	r.progress("recorder: running [pid=%d], transcripts in %s", pid, st.Transcripts())
	return nil
}

// nudgeRecorder makes the recorder look for new containers now rather than
// at its next round, so a new agent's stream starts at once.
func nudgeRecorder(st state.Run) {
	if pid := livePID(st.RecordPID()); pid > 0 {
		syscall.Kill(pid, syscall.SIGUSR1)
	}
}

// stopRecorder stops the run's recorder, if it runs.
func (r *Runner) stopRecorder(st state.Run) {
	if pid := livePID(st.RecordPID()); pid > 0 {
		r.progress("recorder: stopping [pid=%d]", pid)
		stopPID(pid)
	}
}

// ServeRecorder records the transcripts of one run until ctx ends. It is
// what `runner record serve STATE_ROOT RUN` runs, detached from the CLI.
// The cap on each agent's transcript comes from RUNNER_TRANSCRIPT_MAX.
func ServeRecorder(ctx context.Context, eng engine.Engine, root, run string, log hclog.Logger) error {
	if err := names.Check("run", run); err != nil {
		return err
	}
	max, err := transcript.MaxFromEnv()
	if err != nil {
		return err
	}
	st := state.Run{Root: root, Name: run}
	if !st.Exists() {
		return fmt.Errorf("recorder: run %q has no state in %s", run, root)
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	rec := &recorder{
		eng: eng, st: st, max: max, log: log,
		writers: map[string]*transcript.Writer{}, active: map[string]bool{}, retry: map[string]retry{},
	}
	nudge := make(chan os.Signal, 1)
	signal.Notify(nudge, syscall.SIGUSR1)
	defer signal.Stop(nudge)
	if err := st.WriteFile(st.RecordPID(), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return err
	}
	defer os.Remove(st.RecordPID())
	log.Info("recording", "run", run, "engine", eng.Describe(), "dir", st.Transcripts(), "cap", max)
	tick := time.NewTicker(recordInterval)
	defer tick.Stop()
	for {
		rec.scan(ctx)
		select {
		case <-ctx.Done():
			rec.wg.Wait()
			rec.closeAll()
			return nil
		case <-tick.C:
		case <-nudge:
		}
	}
}

type recorder struct {
	eng engine.Engine
	st  state.Run
	max int64
	log hclog.Logger
	wg  sync.WaitGroup

	mu      sync.Mutex
	writers map[string]*transcript.Writer // by agent
	active  map[string]bool               // container ids being streamed
	retry   map[string]retry              // by container id
	lastErr string                        // the last listing error, logged once
}

// retry is when a container's stream may be tried again after it ended.
type retry struct {
	at       time.Time
	failures int
}

// scan starts a stream for every running container of the run that has none.
func (rc *recorder) scan(ctx context.Context) {
	list, err := rc.eng.List(ctx, rc.st.Name)
	if err != nil {
		if ctx.Err() == nil && err.Error() != rc.lastErr {
			rc.log.Warn("cannot list the run's containers", "error", err)
		}
		rc.lastErr = err.Error()
		return
	}
	rc.lastErr = ""
	rc.mu.Lock()
	defer rc.mu.Unlock()
	seen := map[string]bool{}
	for _, c := range list {
		seen[c.ID] = true
		if c.State != "running" || rc.active[c.ID] || time.Now().Before(rc.retry[c.ID].at) {
			continue
		}
		// The name becomes a file name: only names the config allows.
		if err := names.Check("agent", c.Agent); err != nil {
			continue
		}
		w := rc.writers[c.Agent]
		if w == nil {
			if w, err = transcript.Open(rc.st.Transcripts(), c.Agent, rc.max, 0); err != nil {
				rc.log.Error("cannot open the transcript", "agent", c.Agent, "error", err)
				continue
			}
			rc.writers[c.Agent] = w
		}
		rc.active[c.ID] = true
		rc.wg.Add(1)
		go rc.follow(ctx, c, w)
	}
	for id := range rc.retry {
		if !seen[id] {
			delete(rc.retry, id)
		}
	}
}

// follow streams one container's pane into its agent's transcript until the
// stream ends (the container stopped, tmux exited) or ctx does.
func (rc *recorder) follow(ctx context.Context, c engine.Container, w *transcript.Writer) {
	defer rc.wg.Done()
	start := time.Now()
	// The whole scrollback of a container that started after the
	// transcript's last record: none of it is recorded yet. Otherwise (a
	// restarted stream or recorder) some of it is, and the screen is
	// context enough.
	history := "0"
	if last := w.Modified(); last.IsZero() {
		history = "-1"
	} else if obs, err := rc.eng.Inspect(ctx, c.ID); err == nil && obs.StartedAt.After(last) {
		history = "-1"
	}
	log := rc.log.With("agent", c.Agent, "container", shortID(c.ID))
	err := func() error {
		s, err := rc.eng.ExecStream(ctx, c.ID, []string{agentBin, "stream", "--header", "--history", history})
		if err != nil {
			return err
		}
		stop := context.AfterFunc(ctx, func() { s.Close() })
		defer stop()
		wait := func() (int, string, error) {
			s.Close()
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			return s.Wait(wctx)
		}
		// Only a stream that starts with the header is the pane's: the
		// engine may write its own errors on the exec's stdout.
		hdr := make([]byte, len(shim.StreamHeader))
		n, err := io.ReadFull(s, hdr)
		if err != nil || string(hdr) != shim.StreamHeader {
			more, _ := io.ReadAll(io.LimitReader(s, 2<<10))
			said := strings.TrimSpace(termsafe.Text(string(append(hdr[:n], more...))))
			code, stderr, _ := wait()
			if code == 2 && (strings.Contains(stderr, "unknown command") || strings.Contains(stderr, "not defined")) {
				return fmt.Errorf("the image's runner-agent cannot stream (exit %d: %s): rebuild the image (runner image build) and apply", code, strings.TrimSpace(stderr))
			}
			return fmt.Errorf("runner-agent stream did not start (exit %d): %s %s", code, said, strings.TrimSpace(stderr))
		}
		log.Info("recording the pane", "history", history)
		// Which container's stream the records that follow came through,
		// and (below) when it ended: a gap in the recording is visible.
		if err := w.Note(time.Now(), transcript.EventStream, "container "+shortID(c.ID)+", history "+history); err != nil {
			s.Close()
			return fmt.Errorf("writing the transcript: %w", err)
		}
		buf := make([]byte, transcript.MaxChunk)
		var rerr error
		for rerr == nil {
			var n int
			n, rerr = s.Read(buf)
			if n > 0 {
				if err := w.Write(time.Now(), buf[:n]); err != nil {
					s.Close()
					return fmt.Errorf("writing the transcript: %w", err)
				}
			}
		}
		code, stderr, err := wait()
		end := "exit " + strconv.Itoa(code)
		if ctx.Err() != nil {
			end = "recorder stopped"
		} else if err != nil {
			end = "lost the stream"
		}
		if err := w.Note(time.Now(), transcript.EventStreamEnd, "container "+shortID(c.ID)+", "+end); err != nil {
			return fmt.Errorf("writing the transcript: %w", err)
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			return err
		case code != 0:
			return fmt.Errorf("runner-agent stream exited %d: %s", code, strings.TrimSpace(stderr))
		}
		return nil
	}()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	delete(rc.active, c.ID)
	r := rc.retry[c.ID]
	if time.Since(start) > 30*time.Second {
		r.failures = 0
	}
	// Quick retries at first (tmux may not be up yet), then backing off.
	r.at = time.Now().Add(min(250*time.Millisecond<<r.failures, time.Minute))
	r.failures = min(r.failures+1, 10)
	rc.retry[c.ID] = r
	switch {
	case ctx.Err() != nil:
	case err != nil && r.failures <= 3:
		log.Info("stream ended; retrying", "error", err)
	case err != nil && r.failures == 4:
		log.Warn("stream keeps failing; retrying at most every minute", "error", err)
	case err == nil:
		log.Info("stream ended")
	}
}

func (rc *recorder) closeAll() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for a, w := range rc.writers {
		if err := w.Close(); err != nil {
			rc.log.Error("closing the transcript", "agent", a, "error", err)
		}
	}
}

// LogsOptions says what Logs prints.
type LogsOptions struct {
	// Since skips output recorded before it (zero: all of it).
	Since time.Time
	// Follow keeps printing as the agent prints, until ctx ends or the run
	// is destroyed.
	Follow bool
	// Raw prints the bytes as the agent wrote them, escape sequences and
	// all; otherwise they are stripped to plain text (termsafe.Plain).
	Raw bool
	Out io.Writer
	// Err, if set, gets the notice that earlier output was dropped at the
	// cap when Raw is set (without Raw it goes to Out, in line).
	Err io.Writer
}

// Logs prints an agent's transcript: everything its pane printed since the
// run was applied (within the transcript's cap), text it later cleared from
// its screen included. It needs no engine: transcripts are files on this
// host.
func (r *Runner) Logs(ctx context.Context, cfg *config.Config, agent string, o LogsOptions) error {
	st, err := r.runState(cfg.Run.Name)
	if err != nil {
		return err
	}
	if err := names.Check("agent", agent); err != nil {
		return err
	}
	// An agent since removed from the config still has its transcript.
	if _, cfgErr := r.agentOf(cfg, agent); cfgErr != nil {
		if !transcript.Exists(st.Transcripts(), agent) {
			return cfgErr
		}
	}
	if !st.Exists() {
		return fmt.Errorf("run %q has no state on this host: apply it first (`runner apply %s`); transcripts are removed by destroy", cfg.Run.Name, cfg.File)
	}
	var (
		strip termsafe.Plain
		buf   []byte
	)
	err = transcript.Read(ctx, st.Transcripts(), agent, transcript.ReadOptions{
		Since:  o.Since,
		Follow: o.Follow,
		Stop:   func() bool { return !st.Exists() },
	}, func(rec transcript.Record) error {
		if rec.Dropped != nil {
			notice := dropNotice(rec.Dropped)
			if !o.Raw {
				_, err := io.WriteString(o.Out, notice)
				return err
			}
			if o.Err != nil {
				io.WriteString(o.Err, notice)
			}
			return nil
		}
		if o.Raw {
			_, err := o.Out.Write(rec.Data)
			return err
		}
		buf = strip.Filter(buf[:0], rec.Data)
		if len(buf) == 0 {
			return nil
		}
		_, err := o.Out.Write(buf)
		return err
	})
	if errors.Is(err, transcript.ErrNoTranscript) {
		return fmt.Errorf("agent %q has no transcript yet: it is recorded while the run is applied (its recorder, started by `runner apply %s`, logs to %s)", agent, cfg.File, st.RecordLog())
	}
	return err
}

// dropNotice is the line logs prints where output was dropped at the cap.
func dropNotice(d *transcript.Drop) string {
	if d.Bytes < 0 {
		return fmt.Sprintf("[runner: output is missing here, up to segment %d: dropped at the transcript's cap (%s) while being read, or deleted (runner logs --verify checks)]\n", d.Seg, transcript.EnvMax)
	}
	return fmt.Sprintf("[runner: %s of earlier output, recorded %s to %s, was dropped to keep this transcript within its cap (%s)]\n",
		formatBytes(d.Bytes), d.From.UTC().Format(time.RFC3339), d.To.UTC().Format(time.RFC3339), transcript.EnvMax)
}

// formatBytes is n in the largest binary unit that keeps it at least 1.
func formatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// VerifyTranscript checks the hash chain of an agent's transcript (see
// transcript.Verify) and returns what it found and the transcript's
// directory. It needs no engine.
func (r *Runner) VerifyTranscript(cfg *config.Config, agent string) (transcript.Verified, string, error) {
	st, err := r.runState(cfg.Run.Name)
	if err != nil {
		return transcript.Verified{}, "", err
	}
	if err := names.Check("agent", agent); err != nil {
		return transcript.Verified{}, "", err
	}
	dir := transcript.Dir(st.Transcripts(), agent)
	if !transcript.Exists(st.Transcripts(), agent) {
		return transcript.Verified{}, dir, fmt.Errorf("agent %q: %w in %s: it is recorded while the run is applied", agent, transcript.ErrNoTranscript, st.Transcripts())
	}
	v, err := transcript.Verify(st.Transcripts(), agent)
	return v, dir, err
}
