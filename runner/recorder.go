package runner

import (
	"context"
	"fmt"
	"io"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/names"
	"github.com/runner-dev/runner/internal/shim"
	"github.com/runner-dev/runner/internal/state"
	"github.com/runner-dev/runner/internal/termsafe"
	"github.com/runner-dev/runner/internal/transcript"
)

// Transcripts: every run has a recorder, a component of its host-services
// process (see services.go). It lists the run's containers every few
// seconds (and at once when apply reloads the process), runs
// `runner-agent stream` in each running one through the engine's exec API,
// and appends what it reads to that agent's transcript in the run's private
// directory (see internal/transcript for the files and their format). No
// container mounts that directory, so an agent can add to its transcript
// only by printing, and cannot touch what it printed before. A container
// that restarts or is replaced goes on with the same agent's transcript.

// recordInterval is how often the recorder looks for new containers.
const recordInterval = 2 * time.Second

// recorderService is the recorder as a component: each Run connects to the
// engine the run was applied on (services.json) and records until ctx ends.
type recorderService struct {
	st      state.Run
	connect func(ctx context.Context, endpoint string) (engine.Engine, error)
	log     hclog.Logger
	nudge   chan struct{}

	mu  sync.Mutex
	cfg servicesFile
	// secrets are the run's secret values (value -> name), redacted from
	// every pane before it is recorded; gen counts their changes.
	secrets map[string]string
	gen     int
}

// secretValues is what the recorder's redactors read.
func (s *recorderService) secretValues() (map[string]string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.secrets, s.gen
}

func newRecorderService(st state.Run, connect func(context.Context, string) (engine.Engine, error), log hclog.Logger) *recorderService {
	return &recorderService{st: st, connect: connect, log: log, nudge: make(chan struct{}, 1)}
}

func (s *recorderService) Name() string { return "recorder" }

// Reload makes the recorder look for new containers now rather than at its
// next round, so a new agent's stream starts at once. A new engine
// endpoint or cap is taken up at the next Run.
func (s *recorderService) Reload(_ context.Context, hc hostConfig) error {
	s.mu.Lock()
	s.cfg = hc.Services
	if v := hc.Secrets.Values(); !maps.Equal(v, s.secrets) {
		s.secrets, s.gen = v, s.gen+1
	}
	s.mu.Unlock()
	select {
	case s.nudge <- struct{}{}:
	default:
	}
	return nil
}

func (s *recorderService) Run(ctx context.Context) error {
	s.mu.Lock()
	cfg := s.cfg
	s.mu.Unlock()
	if s.connect == nil {
		return fmt.Errorf("recorder: no engine")
	}
	max := cfg.TranscriptMax
	if max <= 0 {
		max = transcript.DefaultMax
	}
	eng, err := s.connect(ctx, cfg.DockerHost)
	if err != nil {
		return err
	}
	defer eng.Close()
	rec := &recorder{
		eng: eng, st: s.st, max: max, log: s.log, secrets: s.secretValues,
		writers: map[string]*transcript.Writer{}, active: map[string]bool{}, retry: map[string]retry{},
	}
	s.log.Info("recording", "run", s.st.Name, "engine", eng.Describe(), "dir", s.st.Transcripts(), "cap", max)
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
		case <-s.nudge:
		}
	}
}

type recorder struct {
	eng engine.Engine
	st  state.Run
	max int64
	log hclog.Logger
	wg  sync.WaitGroup
	// secrets are the values to redact, and their generation.
	secrets func() (map[string]string, int)

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
		s, err := rc.eng.ExecStream(ctx, c.ID, []string{agentBin(ctx, rc.eng, c.ID), "stream", "--header", "--history", history})
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
		// A secret value the agent prints (a file secret it cats) is
		// recorded as [secret NAME], also when split across reads.
		vals, gen := rc.secrets()
		red := transcript.NewRedactor(vals)
		var rerr error
		for rerr == nil {
			var n int
			n, rerr = s.Read(buf)
			if v, g := rc.secrets(); g != gen {
				red.Set(v)
				gen = g
			}
			out := red.Push(buf[:n])
			if rerr != nil {
				out = append(out, red.Flush()...)
			}
			if len(out) > 0 {
				if err := w.Write(time.Now(), out); err != nil {
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
