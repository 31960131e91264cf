package workspace

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"

	"github.com/runner-dev/runner/internal/engine"
)

// UploadPack is the service a fetch asks for; the proxy serves nothing else
// (never receive-pack: the host pushes nothing into an agent).
const UploadPack = "git-upload-pack"

// ProxyOptions is one connection between the host's git fetch and the
// agent's git upload-pack.
type ProxyOptions struct {
	Engine    engine.Engine
	Container string // the agent's container
	User      string // its uid:gid (never 0)
	Path      string // the clone's path in the container
	Service   string // what git asked for; must be UploadPack
	Max       int64  // bytes the agent may send
	In        io.Reader
	Out       io.Writer // to git: the protocol, byte for byte, capped
	Err       io.Writer // to git's stderr (which the host side sanitises)
}

// ErrTooBig is the proxy's error when the agent sent more than Max bytes
// or advertised more than MaxRefs refs.
var ErrTooBig = errors.New("over the fetch cap")

// Proxy runs git upload-pack in the agent's container and connects it to
// the host's git. Everything upload-pack reads (the clone's config, hooks,
// attributes) it reads inside the sandbox; what it sends is counted and
// cut off at Max, and its ref advertisement at MaxRefs refs.
func Proxy(ctx context.Context, o ProxyOptions) (int, error) {
	if o.Service != UploadPack {
		return 0, fmt.Errorf("the workspace proxy serves only %s, not %q", UploadPack, o.Service)
	}
	if _, _, err := parseUser(o.User); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cw := &capWriter{w: o.Out, max: o.Max, cancel: cancel}
	code, err := o.Engine.ExecAttached(ctx, o.Container, engine.ExecOptions{
		Argv:   []string{"git", "upload-pack", "--timeout=600", o.Path},
		User:   o.User,
		Stdin:  o.In,
		Stdout: cw,
		Stderr: &limitWriter{w: o.Err, left: 64 << 10},
	})
	if cw.over != nil {
		return 1, cw.over
	}
	return code, err
}

// parseUser refuses uid 0 and anything not numeric.
func parseUser(u string) (uint64, uint64, error) {
	var su, sg string
	for i := 0; i < len(u); i++ {
		if u[i] == ':' {
			su, sg = u[:i], u[i+1:]
			break
		}
	}
	uid, err1 := strconv.ParseUint(su, 10, 32)
	gid, err2 := strconv.ParseUint(sg, 10, 32)
	if err1 != nil || err2 != nil || uid == 0 {
		return 0, 0, fmt.Errorf("the agent's user %q is not a numeric non-root uid:gid; refusing to run upload-pack as it", u)
	}
	return uid, gid, nil
}

// capWriter passes bytes through until max, and counts the pkt-lines of the
// first section (the v0 ref advertisement, up to its flush-pkt) up to
// MaxRefs.
type capWriter struct {
	w      io.Writer
	max    int64
	n      int64
	cancel func()
	over   error

	mu      sync.Mutex
	hdr     []byte
	skip    int // payload bytes of the current pkt-line still to pass
	refs    int
	advDone bool
}

func (c *capWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.over != nil {
		return 0, c.over
	}
	c.n += int64(len(p))
	if c.n > c.max {
		c.over = fmt.Errorf("%w: the agent's repository sent more than %d MiB (set RUNNER_FETCH_MAX to raise the cap); nothing was fetched", ErrTooBig, c.max>>20)
		c.cancel()
		return 0, c.over
	}
	if !c.advDone {
		c.scan(p)
		if c.refs > MaxRefs {
			c.over = fmt.Errorf("%w: the agent's repository advertises more than %d refs; nothing was fetched", ErrTooBig, MaxRefs)
			c.cancel()
			return 0, c.over
		}
	}
	return c.w.Write(p)
}

// scan follows pkt-line framing through the advertisement.
func (c *capWriter) scan(p []byte) {
	for len(p) > 0 && !c.advDone {
		if c.skip > 0 {
			k := min(c.skip, len(p))
			c.skip -= k
			p = p[k:]
			continue
		}
		need := 4 - len(c.hdr)
		k := min(need, len(p))
		c.hdr = append(c.hdr, p[:k]...)
		p = p[k:]
		if len(c.hdr) < 4 {
			return
		}
		n, err := strconv.ParseUint(string(c.hdr), 16, 16)
		c.hdr = c.hdr[:0]
		switch {
		case err != nil:
			c.advDone = true // not pkt-line framing: git itself will refuse it
		case n == 0:
			c.advDone = true
		case n < 4:
			c.advDone = true
		default:
			c.refs++
			c.skip = int(n) - 4
		}
	}
}

// limitWriter passes on at most left bytes.
type limitWriter struct {
	w    io.Writer
	left int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.left > 0 {
		k := min(len(p), l.left)
		l.left -= k
		l.w.Write(p[:k])
	}
	return len(p), nil
}
