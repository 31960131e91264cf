package containerd

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"syscall"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/uids"
)

// execProcess is the process of an exec: the container's own (its
// capabilities, none; no-new-privileges; its environment and working
// directory) with argv, and user when given.
func execProcess(sp *specs.Spec, user string, argv, env []string, tty bool, rows, cols uint) (*specs.Process, error) {
	if sp.Process == nil {
		return nil, errors.New("the container has no process in its spec")
	}
	p := *sp.Process
	p.Args = slices.Clone(argv)
	p.Env = mergeEnv(sp.Process.Env, env)
	p.Terminal = tty
	p.ConsoleSize = nil
	if tty && rows > 0 && cols > 0 {
		p.ConsoleSize = &specs.Box{Height: rows, Width: cols}
	}
	if user != "" {
		uid, gid, ok := uids.ParseUser(user)
		if !ok {
			return nil, fmt.Errorf("user %q is not a numeric uid:gid", user)
		}
		p.User = specs.User{UID: uid, GID: gid}
	}
	return &p, nil
}

func execID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "exec-" + hex.EncodeToString(b)
}

// started is one running exec.
type started struct {
	proc client.Process
	exit <-chan client.ExitStatus
}

func (e *Engine) startExec(ctx context.Context, id, user string, argv, env []string, tty bool, rows, cols uint, creator cio.Creator) (*started, error) {
	task, sp, err := e.task(ctx, id)
	if err != nil {
		return nil, err
	}
	p, err := execProcess(sp, user, argv, env, tty, rows, cols)
	if err != nil {
		return nil, fmt.Errorf("containerd exec in %s: %w", id, err)
	}
	proc, err := task.Exec(ctx, execID(), p, creator)
	if err != nil {
		return nil, e.wrap("exec in "+id, err)
	}
	// Wait before Start, so a fast exit is not missed. The wait outlives
	// ctx of the call that started it (a stream ends on its own).
	exit, err := proc.Wait(context.WithoutCancel(ctx))
	if err != nil {
		proc.Delete(context.WithoutCancel(ctx), client.WithProcessKill)
		return nil, e.wrap("exec in "+id, err)
	}
	if err := proc.Start(ctx); err != nil {
		proc.Delete(context.WithoutCancel(ctx), client.WithProcessKill)
		return nil, e.wrap("exec in "+id, err)
	}
	return &started{proc: proc, exit: exit}, nil
}

// wait returns the exit code, then deletes the process (and its I/O).
func (s *started) wait(ctx context.Context) (int, error) {
	select {
	case st := <-s.exit:
		code, _, err := st.Result()
		s.proc.Delete(context.WithoutCancel(ctx))
		return int(code), err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Exec runs argv (no shell) and collects its output, bounded.
func (e *Engine) Exec(ctx context.Context, id, user string, argv []string) (engine.ExecResult, error) {
	stdout, stderr := &capped{max: engine.MaxExecOutput}, &capped{max: engine.MaxExecOutput}
	s, err := e.startExec(ctx, id, user, argv, nil, false, 0, 0, cio.NewCreator(cio.WithStreams(nil, stdout, stderr)))
	if err != nil {
		return engine.ExecResult{}, err
	}
	code, err := s.wait(ctx)
	if err != nil {
		s.proc.Kill(context.WithoutCancel(ctx), syscall.SIGKILL)
		s.proc.Delete(context.WithoutCancel(ctx), client.WithProcessKill)
		return engine.ExecResult{}, e.wrap("exec in "+id, err)
	}
	// Delete waited for the copy of the output to finish.
	return engine.ExecResult{Stdout: stdout.String(), Stderr: stderr.String(), ExitCode: code, Truncated: stdout.over || stderr.over}, nil
}

// capped keeps the first max bytes written to it and drops the rest.
type capped struct {
	mu   sync.Mutex
	b    bytes.Buffer
	max  int
	over bool
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.max - c.b.Len(); len(p) > room {
		c.b.Write(p[:max(room, 0)])
		c.over = true
		return len(p), nil
	}
	return c.b.Write(p)
}

func (c *capped) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.String()
}

// ExecTTY starts argv on a new TTY; keys are forwarded only withStdin.
func (e *Engine) ExecTTY(ctx context.Context, id string, argv, env []string, withStdin bool, rows, cols uint) (engine.TTY, error) {
	outR, outW := io.Pipe()
	t := &tty{out: outR, outW: outW, stdin: withStdin}
	var in io.Reader
	if withStdin {
		var inR *io.PipeReader
		inR, t.in = io.Pipe()
		in = inR
	}
	s, err := e.startExec(ctx, id, "", argv, env, true, rows, cols, cio.NewCreator(cio.WithStreams(in, outW, nil), cio.WithTerminal))
	if err != nil {
		return nil, err
	}
	t.s = s
	return t, nil
}

type tty struct {
	s     *started
	out   *io.PipeReader
	outW  *io.PipeWriter
	in    *io.PipeWriter
	stdin bool
	once  sync.Once
}

func (t *tty) Read(p []byte) (int, error) { return t.out.Read(p) }

// Write refuses when the exec has no stdin: a read-only session must not
// be able to type, even by mistake in the caller.
func (t *tty) Write(p []byte) (int, error) {
	if !t.stdin {
		return 0, errors.New("this terminal session is read-only")
	}
	return t.in.Write(p)
}

// Close ends the session: the terminal's input closes (the program sees
// end of file) and its output is no longer read.
func (t *tty) Close() error {
	t.once.Do(func() {
		if t.in != nil {
			t.in.Close()
		}
		t.out.Close()
		ctx := context.Background()
		t.s.proc.CloseIO(ctx, client.WithStdinCloser)
	})
	return nil
}

func (t *tty) Resize(ctx context.Context, rows, cols uint) error {
	return t.s.proc.Resize(ctx, uint32(cols), uint32(rows))
}

func (t *tty) Wait(ctx context.Context) (int, error) {
	code, err := t.s.wait(ctx)
	t.outW.Close()
	return code, err
}

// ExecStream starts argv without a TTY as the container's user and
// streams its standard output; its standard input is a pipe that stays
// open, and empty, until the stream is closed.
func (e *Engine) ExecStream(ctx context.Context, id string, argv []string) (engine.Stream, error) {
	outR, outW := io.Pipe()
	inR, inW := io.Pipe()
	st := &stream{out: outR, outW: outW, in: inW, stderr: &engine.TailBuffer{Max: 4 << 10}}
	s, err := e.startExec(ctx, id, "", argv, nil, false, 0, 0, cio.NewCreator(cio.WithStreams(inR, outW, st.stderr)))
	if err != nil {
		return nil, err
	}
	st.s = s
	return st, nil
}

type stream struct {
	s      *started
	out    *io.PipeReader
	outW   *io.PipeWriter
	in     *io.PipeWriter
	stderr *engine.TailBuffer
	once   sync.Once
}

func (s *stream) Read(p []byte) (int, error) { return s.out.Read(p) }

func (s *stream) Close() error {
	s.once.Do(func() {
		s.in.Close()
		s.out.Close()
		s.s.proc.CloseIO(context.Background(), client.WithStdinCloser)
	})
	return nil
}

func (s *stream) Wait(ctx context.Context) (int, string, error) {
	code, err := s.s.wait(ctx)
	s.outW.Close()
	return code, s.stderr.String(), err
}

// ExecAttached runs an operator's command as o.User with its streams
// attached, until it ends.
func (e *Engine) ExecAttached(ctx context.Context, id string, o engine.ExecOptions) (int, error) {
	if o.User == "" {
		return 0, errors.New("containerd exec: no user given (an operator's command never runs as the image's default user)")
	}
	stdout, stderr := o.Stdout, o.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil || o.TTY {
		stderr = io.Discard
	}
	opts := []cio.Opt{cio.WithStreams(o.Stdin, stdout, stderr)}
	if o.TTY {
		opts = append(opts, cio.WithTerminal)
	}
	s, err := e.startExec(ctx, id, o.User, o.Argv, o.Env, o.TTY, o.Rows, o.Cols, cio.NewCreator(opts...))
	if err != nil {
		return 0, err
	}
	for {
		select {
		case st := <-s.exit:
			code, _, err := st.Result()
			// Delete waits for the output to be copied.
			s.proc.Delete(context.WithoutCancel(ctx))
			return int(code), err
		case <-ctx.Done():
			s.proc.Kill(context.WithoutCancel(ctx), syscall.SIGKILL)
			s.proc.Delete(context.WithoutCancel(ctx), client.WithProcessKill)
			return 0, ctx.Err()
		case sz := <-o.Resized:
			s.proc.Resize(ctx, uint32(sz[1]), uint32(sz[0]))
		}
	}
}
