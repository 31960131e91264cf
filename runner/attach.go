package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"time"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/state"
	"github.com/runner-dev/runner/internal/termsafe"
)

// AttachOptions says how to attach to an agent's pane.
type AttachOptions struct {
	// Write lets keystrokes reach the agent; it is audited. Without it the
	// session is read-only twice over: tmux's read-only client mode, and no
	// stdin attached to the exec at all.
	Write bool
	In    io.Reader // keys, read only when Write
	Out   io.Writer // the terminal's output
	// Size returns the local terminal's size; Resized signals a change.
	Size    func() (rows, cols uint)
	Resized <-chan struct{}
	// Term is the local terminal type (TERM) for the tmux client.
	Term string
	// Started, if set, is called once the agent's container was found,
	// just before the session starts (to say so and make the terminal
	// raw); an error from it stops the attach.
	Started func() error
}

// Attach connects the operator's terminal to an agent's live pane until the
// tmux client ends (detach, or ctx cancelled).
func (r *Runner) Attach(ctx context.Context, cfg *config.Config, agent string, o AttachOptions) error {
	c, err := r.container(ctx, cfg, agent)
	if err != nil {
		return err
	}
	st, err := r.runState(cfg.Run.Name)
	if err != nil {
		return err
	}
	rows, cols := uint(50), uint(200)
	if o.Size != nil {
		rows, cols = o.Size()
	}
	term := o.Term
	if term == "" {
		term = "xterm-256color"
	}
	// runner-agent becomes the tmux client, marked with id so that the
	// client can be ended on detach (the engine leaves it running).
	var idb [16]byte
	rand.Read(idb[:])
	id := hex.EncodeToString(idb[:])
	argv := []string{agentBin(ctx, r.Engine, c.ID), "attach", "--id", id}
	if o.Write {
		argv = append(argv, "--write")
	}
	// The lease is taken before the client starts and dropped after it
	// was ended, so a CLI killed at any point leaves one behind.
	if st.Exists() {
		r.endStaleAttaches(ctx, cfg, st)
		if err := takeLease(st, id, agent); err != nil {
			r.log().Warn("cannot record the attach in the run's state", "error", err)
		}
		defer dropLease(st, id)
	}
	if o.Started != nil {
		if err := o.Started(); err != nil {
			return err
		}
	}
	tty, err := r.Engine.ExecTTY(ctx, c.ID, argv, []string{"TERM=" + term, "LANG=C.UTF-8"}, o.Write, rows, cols)
	if err != nil {
		return err
	}
	defer tty.Close()
	defer r.endAttach(ctx, c.ID, id)
	// API 1.41 daemons ignore the size given at create; set it now.
	go func() {
		time.Sleep(100 * time.Millisecond)
		tty.Resize(ctx, rows, cols)
	}()
	start := time.Now()
	mode := "read-only"
	if o.Write {
		mode = "write access"
	}
	r.auditRun(st, "attach", agent, mode)
	defer func() {
		r.auditRun(st, "detach", agent, mode+", attached for "+time.Since(start).Round(time.Second).String())
	}()

	// What the tmux client prints is the agent's: a terminal view of it,
	// and nothing else, reaches the operator's terminal.
	out := termsafe.NewViewWriter(o.Out)
	done := make(chan error, 1)
	copied := make(chan struct{})
	go func() {
		_, err := io.Copy(out, tty)
		done <- err
		close(copied)
	}()
	// The agent can stop its client mid-draw (kill it, or write to its
	// pty), leaving the operator's terminal concealed, in another charset
	// or scroll region: once nothing more can arrive, put it back.
	defer func() {
		tty.Close()
		select {
		case <-copied:
		case <-time.After(2 * time.Second):
		}
		io.WriteString(o.Out, termsafe.Reset)
	}()
	if o.Write && o.In != nil {
		go io.Copy(tty, o.In)
	}
	for {
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return nil
		case <-o.Resized:
			if o.Size != nil {
				rows, cols := o.Size()
				if err := tty.Resize(ctx, rows, cols); err != nil {
					r.log().Debug("resize failed", "error", err)
				}
			}
		}
	}
}

// endAttach ends the attach's tmux client in the container, with a context
// of its own: it must run after the operator's ctx was cancelled.
func (r *Runner) endAttach(ctx context.Context, container, id string) {
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	res, err := r.Engine.Exec(ectx, container, "", []string{agentBin(ectx, r.Engine, container), "attach", "--end", id})
	if err != nil || res.ExitCode != 0 {
		r.log().Warn("could not end the attach's tmux client in the container", "error", err, "exit", res.ExitCode, "stderr", stderrLine(res))
	}
}

// auditRun appends to the run's audit log if the run has state here.
func (r *Runner) auditRun(st state.Run, event, target, detail string) {
	if !st.Exists() {
		return
	}
	r.audit(st, event, target, detail)
}
