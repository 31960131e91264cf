package runner

import (
	"context"
	"io"
	"time"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/shim"
	"github.com/runner-dev/runner/internal/state"
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
}

// tmuxAttachArgv is the tmux client the exec runs in the container.
func tmuxAttachArgv(write bool) []string {
	argv := []string{"tmux", "-u", "-S", shim.DefaultSocket, "attach-session", "-t", shim.SessionName}
	if !write {
		// ignore-size: a watcher's small terminal must not shrink the
		// agent's window.
		argv = append(argv, "-f", "read-only,ignore-size")
	}
	return argv
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
	tty, err := r.Engine.ExecTTY(ctx, c.ID, tmuxAttachArgv(o.Write), []string{"TERM=" + term, "LANG=C.UTF-8"}, o.Write, rows, cols)
	if err != nil {
		return err
	}
	defer tty.Close()
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

	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(o.Out, tty)
		done <- err
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

// auditRun appends to the run's audit log if the run has state here.
func (r *Runner) auditRun(st state.Run, event, target, detail string) {
	if !st.Exists() {
		return
	}
	r.audit(st, event, target, detail)
}
