package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/runner-dev/runner/internal/audit"
	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/relay"
	"github.com/runner-dev/runner/internal/termsafe"
)

// ExecOptions says how to run an operator's command in an agent's container.
type ExecOptions struct {
	Argv []string
	// TTY gives the command a terminal (stdin is one); its output then
	// reaches Out as a terminal view, otherwise as plain text.
	TTY  bool
	Term string // the local TERM, for a TTY
	// Size and Resized as in AttachOptions.
	Size    func() (rows, cols uint)
	Resized <-chan struct{}
	In      io.Reader // nil: no standard input
	Out     io.Writer
	Err     io.Writer
}

// Exec runs o.Argv in the agent's container as the container's user, which
// must not be uid 0, and returns the command's exit status. It is audited
// before it starts (with argv[0] and a digest of the whole argv, which may
// hold a secret the operator typed) and when it ends; without an audit log
// it does not run. Everything the command prints is hostile output: it is
// filtered through termsafe on its way to Out and Err.
func (r *Runner) Exec(ctx context.Context, cfg *config.Config, agent string, o ExecOptions) (int, error) {
	if len(o.Argv) == 0 {
		return 0, errors.New("no command to run: give it after --, as in `runner exec FILE AGENT -- ls -la`")
	}
	c, err := r.container(ctx, cfg, agent)
	if err != nil {
		return 0, err
	}
	obs, err := r.Engine.Inspect(ctx, c.ID)
	if err != nil {
		return 0, err
	}
	uid, err := nonRootUser(obs.User)
	if err != nil {
		return 0, fmt.Errorf("agent %q: %w", agent, err)
	}
	st, err := r.runState(cfg.Run.Name)
	if err != nil {
		return 0, err
	}
	if !st.Exists() {
		return 0, fmt.Errorf("run %q has no state on this host (%s), so exec cannot be audited: run `runner apply %s` here first", cfg.Run.Name, st.Dir(), cfg.File)
	}
	detail := fmt.Sprintf("%s (%s), as uid %d, tty %v, by %s", execArgv0(o.Argv), argvDigest(o.Argv), uid, o.TTY, hostUser())
	if err := r.auditStrict(st, "exec", agent, detail); err != nil {
		return 0, fmt.Errorf("not running the command: the audit log cannot be written: %w", err)
	}
	eo := engine.ExecOptions{Argv: o.Argv, User: obs.User, TTY: o.TTY, Stdin: o.In}
	if o.TTY {
		term := o.Term
		if term == "" {
			term = "xterm-256color"
		}
		eo.Env = []string{"TERM=" + term}
		eo.Rows, eo.Cols = 24, 80
		if o.Size != nil {
			eo.Rows, eo.Cols = o.Size()
		}
		eo.Stdout = termsafe.NewViewWriter(o.Out)
		if o.Resized != nil && o.Size != nil {
			sizes := make(chan [2]uint, 1)
			rctx, cancel := context.WithCancel(ctx)
			defer cancel()
			go func() {
				for {
					select {
					case <-rctx.Done():
						return
					case <-o.Resized:
						rows, cols := o.Size()
						select {
						case sizes <- [2]uint{rows, cols}:
						default:
						}
					}
				}
			}()
			eo.Resized = sizes
		}
	} else {
		eo.Stdout = termsafe.NewPlainWriter(o.Out)
		eo.Stderr = termsafe.NewPlainWriter(o.Err)
	}
	start := time.Now()
	code, err := r.Engine.ExecAttached(ctx, c.ID, eo)
	end := fmt.Sprintf("%s, exit %d after %s", execArgv0(o.Argv), code, time.Since(start).Round(time.Millisecond))
	if err != nil {
		end = fmt.Sprintf("%s, failed after %s: %v", execArgv0(o.Argv), time.Since(start).Round(time.Millisecond), err)
	}
	r.audit(st, "exec_end", agent, end)
	return code, err
}

// nonRootUser reads the container's "uid[:gid]" and refuses uid 0, or a
// user name, which would need the image's /etc/passwd to tell.
func nonRootUser(u string) (uint64, error) {
	if u == "" {
		return 0, errors.New("its container has no user set, so a command would run as the image's default (root): refusing; run `runner apply` to recreate it")
	}
	name, _, _ := strings.Cut(u, ":")
	uid, err := strconv.ParseUint(name, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("its container's user is %q, not a numeric uid: refusing, since it may be root", u)
	}
	if uid == 0 {
		return 0, errors.New("its container's user is uid 0: refusing to run a command as root")
	}
	return uid, nil
}

// execArgv0 is what the audit log names of the command: its program, not
// its arguments.
func execArgv0(argv []string) string {
	return fmt.Sprintf("%q, %d args", termsafe.Line(argv[0]), len(argv)-1)
}

// argvDigest identifies the whole argv without revealing it: the operator
// can show which command it was by hashing what they typed.
func argvDigest(argv []string) string {
	h := sha256.New()
	for _, a := range argv {
		fmt.Fprintf(h, "%d:%s", len(a), a)
	}
	return "argv sha256 " + hex.EncodeToString(h.Sum(nil))
}

// hostUser names who ran the command on the host.
func hostUser() string {
	s := "uid " + strconv.Itoa(os.Getuid())
	if u, err := user.Current(); err == nil && u.Username != "" {
		s += " (" + u.Username + ")"
	}
	return s
}

// auditStrict appends an entry and fails when it cannot: for the actions
// that must not happen unrecorded.
func (r *Runner) auditStrict(st interface{ Audit() string }, event, target, detail string) error {
	log, err := audit.Open(st.Audit())
	if err != nil {
		return err
	}
	defer log.Close()
	return log.Append(audit.Event{Time: time.Now(), Event: event, Actor: relay.Operator, Target: target, Detail: detail})
}
