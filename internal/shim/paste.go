package shim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Message delivery into the pane: Paste, Submit, PasteMessage.

// ErrPaneDead means the agent's command in the pane has exited (or the pane
// is gone): nothing is pasted, so no message can land in whatever the pane
// shows next.
var ErrPaneDead = errors.New("the agent's command in the pane has exited")

// DefaultSubmitDelay is the pause between pasting a message and pressing
// Enter, so that a program which tells pasted text from typed keys by their
// timing sees Enter as a key of its own.
const DefaultSubmitDelay = 100 * time.Millisecond

// PaneAlive reports whether the command in target is still running: tmux
// has not seen the pane's terminal close, and its process exists and has not
// exited. An error (no server, no such pane) comes with false.
func (t *Tmux) PaneAlive(ctx context.Context, target string) (bool, error) {
	st, err := t.PaneState(ctx, target)
	if err != nil {
		return false, err
	}
	return st.Running(), nil
}

// Running reports whether the pane's process is running, as of now: tmux
// has not seen its terminal close, and /proc shows it neither gone nor a
// zombie.
func (st PaneState) Running() bool {
	return st.PID > 0 && !st.Dead && !st.Closed && alive(st.PID) && !isZombie(st.PID)
}

// pasteSeq numbers this process's paste buffers.
var pasteSeq atomic.Uint64

// Paste puts text into target as literal text: SanitizeMessage(text) goes on
// the tmux client's stdin, never in an argument, in one invocation of
//
//	load-buffer -b NAME - ; paste-buffer -p -d -b NAME -t TARGET
//
// with a buffer name of its own. paste-buffer -p wraps the text in
// bracketed-paste markers when the program in the pane asked for them; the
// text itself can hold no ESC, so it cannot end the paste early. Newlines
// reach the pane as CR, as typed. Nothing is submitted: see Submit.
func (t *Tmux) Paste(ctx context.Context, target, text string) error {
	text = SanitizeMessage(text)
	if text == "" {
		return nil
	}
	name := fmt.Sprintf("runner-msg-%d-%d-%x", os.Getpid(), pasteSeq.Add(1), rand.Uint32())
	if t.Ctl != nil {
		err := t.pasteCtl(ctx, name, target, text)
		if !errors.Is(err, errCtlUnusable) {
			return err
		}
	}
	_, err := t.execStdin(ctx, strings.NewReader(text),
		[]string{"load-buffer", "-b", name, "-"},
		[]string{"paste-buffer", "-p", "-d", "-b", name, "-t", target})
	if err != nil {
		// If the paste failed after the load, do not leave the text behind.
		_, _ = t.exec(context.WithoutCancel(ctx), "delete-buffer", "-b", name)
		return fmt.Errorf("paste into %s: %w", target, err)
	}
	return nil
}

// pasteCtl is Paste over the control connection. The text cannot go on a
// control-mode line as an argument (it may hold newlines, and would pass
// through tmux's parser), so it goes through a file of this process's own
// in the socket's 0700 directory, which load-buffer reads, and is removed.
func (t *Tmux) pasteCtl(ctx context.Context, name, target, text string) error {
	f, err := os.CreateTemp(filepath.Dir(t.Socket), ".msg-*")
	if err != nil {
		return fmt.Errorf("%w: %v", errCtlUnusable, err)
	}
	defer os.Remove(f.Name())
	_, werr := f.WriteString(text)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("%w: %v", errCtlUnusable, werr)
	}
	timeout := t.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err = t.Ctl.Run(cctx, []string{"load-buffer", "-b", name, "--", f.Name()},
		[]string{"paste-buffer", "-p", "-d", "-b", name, "-t", target})
	if err != nil && !errors.Is(err, errCtlUnusable) {
		_, _ = t.exec(context.WithoutCancel(ctx), "delete-buffer", "-b", name)
		return fmt.Errorf("paste into %s: %w", target, err)
	}
	return err
}

// PasteIfRunning is Paste over the control connection, in one round trip,
// done by tmux only if the pane's command is still pid and its pane not
// dead, checked by tmux at the moment it pastes (if-shell -F): ErrPaneDead
// otherwise, with nothing pasted. It needs the control connection (an error
// wrapping errCtlUnusable without it, nothing done).
func (t *Tmux) PasteIfRunning(ctx context.Context, target string, pid int, text string) error {
	text = SanitizeMessage(text)
	if text == "" {
		return nil
	}
	if t.Ctl == nil || !paneIDRE.MatchString(target) || pid <= 0 {
		return fmt.Errorf("%w: no connection, or not a pane id", errCtlUnusable)
	}
	name := fmt.Sprintf("runner-msg-%d-%d-%x", os.Getpid(), pasteSeq.Add(1), rand.Uint32())
	f, err := os.CreateTemp(filepath.Dir(t.Socket), ".msg-*")
	if err != nil {
		return fmt.Errorf("%w: %v", errCtlUnusable, err)
	}
	defer os.Remove(f.Name())
	_, werr := f.WriteString(text)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("%w: %v", errCtlUnusable, werr)
	}
	dead := "runner-dead-" + name
	// name and target are [A-Za-z0-9%-]: nothing in the branches, parsed
	// again by if-shell, needs quoting.
	cond := "#{&&:#{!=:#{pane_dead},1},#{==:#{pane_pid}," + strconv.Itoa(pid) + "}}"
	cctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	defer cancel()
	out, err := t.Ctl.RunSync(cctx, []string{"load-buffer", "-b", name, "--", f.Name()},
		[]string{"if-shell", "-F", "-t", target, cond,
			"paste-buffer -p -d -b " + name + " -t " + target,
			"delete-buffer -b " + name + " ; display-message -p " + dead})
	if errors.Is(err, errCtlUnusable) {
		return err
	}
	if err != nil {
		_, _ = t.exec(context.WithoutCancel(ctx), "delete-buffer", "-b", name)
		return fmt.Errorf("paste into %s: %w", target, err)
	}
	for _, l := range out {
		if l == dead {
			return ErrPaneDead
		}
	}
	return nil
}

// Submit presses Enter in target (send-keys with the key name, never text).
func (t *Tmux) Submit(ctx context.Context, target string) error {
	_, err := t.exec(ctx, "send-keys", "-t", target, "Enter")
	return err
}

// PasteMessage types text into target and submits it: ErrPaneDead (and
// nothing pasted) unless the pane's command is alive, then Paste, a pause of
// SubmitDelay, and Submit as a tmux call of its own.
func (t *Tmux) PasteMessage(ctx context.Context, target, text string) error {
	ok, err := t.PaneAlive(ctx, target)
	if err != nil {
		return fmt.Errorf("%w (%v)", ErrPaneDead, err)
	}
	if !ok {
		return ErrPaneDead
	}
	if err := t.Paste(ctx, target, text); err != nil {
		return err
	}
	if err := sleepCtx(ctx, t.submitDelay()); err != nil {
		return err
	}
	return t.Submit(ctx, target)
}

func (t *Tmux) submitDelay() time.Duration {
	switch {
	case t.SubmitDelay < 0:
		return 0
	case t.SubmitDelay == 0:
		return DefaultSubmitDelay
	}
	return t.SubmitDelay
}

// sleepCtx sleeps for d, or until ctx is done (then returns its error).
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

// SanitizeMessage returns s as text that cannot act on a terminal: invalid
// UTF-8 is dropped, and so are the C0 controls except \n and \t, DEL, and the
// C1 controls U+0080–U+009F. ESC is one of them, so no escape sequence — a
// bracketed-paste end marker included — survives; what is left of one is
// plain text ("[31m").
func SanitizeMessage(s string) string {
	clean := true
	for _, r := range s { // invalid bytes come as RuneError
		if r == utf8.RuneError || isControl(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if (r == utf8.RuneError && size == 1) || isControl(r) {
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// isControl: C0 but \n and \t, DEL, C1.
func isControl(r rune) bool {
	return (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f || (r >= 0x80 && r <= 0x9f)
}
