package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/names"
	"github.com/runner-dev/runner/internal/termsafe"
	"github.com/runner-dev/runner/internal/transcript"
)

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
		return fmt.Errorf("agent %q has no transcript yet: it is recorded while the run is applied (its recorder, in the host services started by `runner apply %s`, logs to %s)", agent, cfg.File, st.ServicesLog())
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
