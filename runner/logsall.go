package runner

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/names"
	"github.com/runner-dev/runner/internal/transcript"
)

// LogsAll prints every agent's transcript, each line prefixed by the
// agent's name padded to the longest (docker compose logs). Without Follow
// the agents come one after another, by name; with Follow they are read at
// once and their lines interleave as they are printed, whole lines only.
// Raw is not offered: escape sequences of several agents would mix.
func (r *Runner) LogsAll(ctx context.Context, cfg *config.Config, o LogsOptions) error {
	st, err := r.runState(cfg.Run.Name)
	if err != nil {
		return err
	}
	if !st.Exists() {
		return fmt.Errorf("run %q has no state on this host: apply it first (`runner apply %s`); transcripts are removed by destroy", cfg.Run.Name, cfg.File)
	}
	var agents []string
	for _, a := range cfg.Agents {
		agents = append(agents, a.Name)
	}
	// Agents since removed from the file still have their transcripts.
	if entries, err := os.ReadDir(st.Transcripts()); err == nil {
		for _, e := range entries {
			name := strings.SplitN(e.Name(), ".", 2)[0]
			if names.Check("agent", name) == nil && !slices.Contains(agents, name) && transcript.Exists(st.Transcripts(), name) {
				agents = append(agents, name)
			}
		}
	}
	slices.Sort(agents)
	var with []string
	width := 0
	for _, a := range agents {
		if transcript.Exists(st.Transcripts(), a) {
			with = append(with, a)
			width = max(width, len(a))
		}
	}
	if len(with) == 0 {
		return fmt.Errorf("run %q has no transcripts yet: they are recorded while the run is applied (see %s)", cfg.Run.Name, st.ServicesLog())
	}
	var mu sync.Mutex
	one := func(agent string) error {
		w := &prefixWriter{out: o.Out, mu: &mu, prefix: fmt.Sprintf("%-*s | ", width, agent)}
		ao := o
		ao.Raw, ao.Out = false, w
		err := r.Logs(ctx, cfg, agent, ao)
		w.flush()
		if err != nil {
			return fmt.Errorf("%s: %w", agent, err)
		}
		return nil
	}
	if !o.Follow {
		for _, a := range with {
			if err := one(a); err != nil {
				return err
			}
		}
		return nil
	}
	errs := make([]error, len(with))
	var wg sync.WaitGroup
	for i, a := range with {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = one(a)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && ctx.Err() == nil {
			return err
		}
	}
	return nil
}

// prefixWriter writes whole lines, each after prefix, under a lock shared
// by the agents' writers so their lines never mix.
type prefixWriter struct {
	out    io.Writer
	mu     *sync.Mutex
	prefix string
	buf    []byte
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	i := bytes.LastIndexByte(w.buf, '\n')
	if i < 0 {
		return len(p), nil
	}
	lines := w.buf[:i+1]
	var b bytes.Buffer
	for _, l := range bytes.SplitAfter(lines, []byte("\n")) {
		if len(l) > 0 {
			b.WriteString(w.prefix)
			b.Write(l)
		}
	}
	w.buf = append(w.buf[:0], w.buf[i+1:]...)
	w.mu.Lock()
	defer w.mu.Unlock()
	_, err := w.out.Write(b.Bytes())
	return len(p), err
}

// flush writes an unfinished last line.
func (w *prefixWriter) flush() {
	if len(w.buf) == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	fmt.Fprintf(w.out, "%s%s\n", w.prefix, w.buf)
	w.buf = nil
}
