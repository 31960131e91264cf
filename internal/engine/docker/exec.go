package docker

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/runner-dev/runner/internal/engine"
)

// ExecAttached runs o.Argv as o.User with its streams attached.
func (e *Engine) ExecAttached(ctx context.Context, id string, o engine.ExecOptions) (int, error) {
	if o.User == "" {
		return 0, errors.New("docker exec: no user given (an operator's command never runs as the image's default user)")
	}
	size := &[2]uint{o.Rows, o.Cols}
	if !o.TTY || o.Rows == 0 || o.Cols == 0 {
		size = nil
	}
	created, err := e.cli.ContainerExecCreate(ctx, id, container.ExecOptions{
		User: o.User, Cmd: o.Argv, Env: o.Env, Tty: o.TTY, ConsoleSize: size,
		AttachStdin: o.Stdin != nil, AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		return 0, e.wrap("exec in "+id, err)
	}
	att, err := e.cli.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{Tty: o.TTY, ConsoleSize: size})
	if err != nil {
		return 0, e.wrap("exec attach in "+id, err)
	}
	defer att.Close()
	if o.Stdin != nil {
		go func() {
			io.Copy(att.Conn, o.Stdin)
			att.CloseWrite()
		}()
	}
	stdout, stderr := o.Stdout, o.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	done := make(chan error, 1)
	go func() {
		var err error
		if o.TTY {
			_, err = io.Copy(stdout, att.Reader)
		} else {
			// The daemon multiplexes stdout and stderr on one connection.
			_, err = stdcopy.StdCopy(stdout, stderr, att.Reader)
		}
		done <- err
	}()
	for waiting := true; waiting; {
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, io.EOF) {
				return 0, e.wrap("exec read in "+id, err)
			}
			waiting = false
		case <-ctx.Done():
			return 0, ctx.Err()
		case sz := <-o.Resized:
			e.cli.ContainerExecResize(ctx, created.ID, container.ResizeOptions{Height: sz[0], Width: sz[1]})
		}
	}
	// The output ends when the process does; its status follows shortly.
	for {
		ins, err := e.cli.ContainerExecInspect(ctx, created.ID)
		if err != nil {
			return 0, e.wrap("exec inspect in "+id, err)
		}
		if !ins.Running {
			return ins.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
