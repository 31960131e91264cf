package shim

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Control is init's persistent connection to the agent's tmux server: one
// tmux client in control mode (tmux -C attach-session -f
// no-output,ignore-size), commands written as lines on its stdin, each
// answered by a %begin/%end (or %error) block on its stdout. A tmux command
// sent through it costs a few microseconds of the server's time instead of a
// tmux client process per command (a fork, an exec and a new connection:
// about 10 ms on a loaded machine), which is what makes a delivery take
// milliseconds and an idle agent cost next to nothing.
//
// What the client reads is treated as untrusted (the agent shares the
// tmux server's uid and can make it print anything): a reply block ends
// only at the %end or %error line repeating its %begin's time, number and
// flags exactly, lines and replies are bounded, and anything unexpected
// ends the connection. It is reconnected on the next command, after a
// pause (100ms doubling to 5s) if it failed; meanwhile, and for an argument
// a control-mode line cannot carry (a newline), Tmux falls back to a
// client process per command, so nothing depends on the connection.
type Control struct {
	Bin     string // the tmux binary
	Socket  string // the server socket (tmux -S)
	Session string // the session to attach to
	// Start and Wait run the client process; nil means cmd.Start and
	// cmd.Wait. Init passes its Reaper's, so the reaper leaves its status.
	Start func(*exec.Cmd) error
	Wait  func(*exec.Cmd) error
	// Watch, if set, is a tmux format the connection subscribes to
	// (refresh-client -B) for the session's panes: tmux evaluates it once a
	// second and tells us only when its value changed, which is then
	// passed on to every Changes channel. Init watches whether the pane is
	// dead and its process, so nothing polls the pane while it runs.
	Watch string
	// OnOutput, if set, gets every %output line (without "%output ") as it
	// comes (the connection then attaches without no-output), and OnLost
	// is called whenever a connection ends; see StreamServer.
	OnOutput func(rest string)
	OnLost   func()

	subMu sync.Mutex
	subs  map[chan struct{}]struct{}

	sent  atomic.Int64 // commands written (tests: how much is polled)
	syncN atomic.Uint64

	mu      sync.Mutex // one command at a time: replies come in order
	conn    *ctlConn
	retryAt time.Time
	backoff time.Duration
	closed  bool
}

// errCtlUnusable means a command was not sent through the connection at
// all (down, closed, or an argument it cannot carry): the caller may run it
// with a client process instead.
var errCtlUnusable = errors.New("tmux control connection unusable")

// Limits on what the control client may send us.
const (
	ctlMaxLine  = 1 << 20
	ctlMaxReply = 4 << 20
)

type ctlReply struct {
	lines  []string
	failed bool // %error
}

type ctlConn struct {
	cmd     *exec.Cmd
	in      io.WriteCloser
	replies chan ctlReply
	done    chan struct{} // the reader ended: the connection is gone
	quit    chan struct{} // closed by drop: nobody reads replies any more
	hook    atomic.Pointer[ctlHook]
	stderr  bytes.Buffer
}

func (conn *ctlConn) takeHook() ctlHook {
	if h := conn.hook.Swap(nil); h != nil {
		return *h
	}
	return nil
}

// ctlQuote quotes s for tmux's command parser (a control-mode line is
// parsed like a configuration file line): in single quotes nothing is
// special but the quote itself, which is written '\”. A newline would end
// the line, so such an argument cannot be sent (ok false).
func ctlQuote(s string) (string, bool) {
	if strings.ContainsAny(s, "\n\r\x00") {
		return "", false
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'", true
}

// ctlLine is one command as a control-mode line.
func ctlLine(args []string) (string, bool) {
	var b strings.Builder
	for i, a := range args {
		q, ok := ctlQuote(a)
		if !ok {
			return "", false
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(q)
	}
	b.WriteByte('\n')
	return b.String(), true
}

// Run sends the commands of seq, one line each and in order, and returns
// their output (each line followed by "\n", as a client process prints
// it). It stops at the first that fails, with tmux's message. It returns an
// error wrapping errCtlUnusable if nothing was sent.
func (c *Control) Run(ctx context.Context, seq ...[]string) (string, error) {
	return c.run(ctx, nil, seq)
}

// RunSync sends seq and then a display-message of a line of its own, and
// returns the output of every answer up to that one's: for commands that
// are answered a number of times not known in advance (if-shell runs the
// commands of its branch as commands of their own, each answered).
func (c *Control) RunSync(ctx context.Context, seq ...[]string) ([]string, error) {
	sentinel := fmt.Sprintf("runner-sync-%d-%x", c.syncN.Add(1), rand.Uint64())
	lines := make([]string, 0, len(seq)+1)
	for _, args := range append(seq, []string{"display-message", "-p", sentinel}) {
		l, ok := ctlLine(args)
		if !ok {
			return nil, fmt.Errorf("%w: an argument holds a newline", errCtlUnusable)
		}
		lines = append(lines, l)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	conn, err := c.connect(ctx)
	if err != nil {
		return nil, err
	}
	c.sent.Add(int64(len(lines)))
	if _, err := io.WriteString(conn.in, strings.Join(lines, "")); err != nil {
		c.drop()
		return nil, fmt.Errorf("%w: %v", errCtlUnusable, err)
	}
	var out []string
	var first error
	for {
		select {
		case r := <-conn.replies:
			if !r.failed && len(r.lines) == 1 && r.lines[0] == sentinel {
				return out, first
			}
			if r.failed && first == nil {
				first = fmt.Errorf("tmux %s: %s", seq[0][0], strings.Join(r.lines, "; "))
			}
			out = append(out, r.lines...)
		case <-conn.done:
			c.drop()
			return nil, fmt.Errorf("tmux %s: control connection lost", seq[0][0])
		case <-ctx.Done():
			c.drop()
			return nil, fmt.Errorf("tmux %s: no answer on the control connection: %w", seq[0][0], ctx.Err())
		}
	}
}

// RunHook runs one command whose answer goes to hook, line by line, from
// the goroutine that reads the connection: so hook.End runs before any
// notification that follows the answer is handled.
func (c *Control) RunHook(ctx context.Context, hook ctlHook, args ...string) error {
	_, err := c.run(ctx, hook, [][]string{args})
	return err
}

func (c *Control) run(ctx context.Context, hook ctlHook, seq [][]string) (string, error) {
	lines := make([]string, len(seq))
	for i, args := range seq {
		l, ok := ctlLine(args)
		if !ok {
			return "", fmt.Errorf("%w: an argument holds a newline", errCtlUnusable)
		}
		lines[i] = l
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	conn, err := c.connect(ctx)
	if err != nil {
		return "", err
	}
	// All lines go at once and tmux answers each in turn: one round trip
	// for a paste, not two. A later command runs even if an earlier one
	// failed (tmux runs every line); for the sequences sent here the later
	// one then fails too (no buffer to paste, no pane to respawn).
	c.sent.Add(int64(len(lines)))
	if hook != nil { // RunHook: one command
		conn.hook.Store(&hook)
	}
	if _, err := io.WriteString(conn.in, strings.Join(lines, "")); err != nil {
		c.drop()
		return "", fmt.Errorf("%w: %v", errCtlUnusable, err)
	}
	var out strings.Builder
	var first error
	for i := range lines {
		select {
		case r := <-conn.replies:
			if r.failed && first == nil {
				first = fmt.Errorf("tmux %s: %s", seq[i][0], strings.Join(r.lines, "; "))
			}
			if first == nil {
				for _, s := range r.lines {
					out.WriteString(s)
					out.WriteByte('\n')
				}
			}
		case <-conn.done:
			c.drop()
			return "", fmt.Errorf("tmux %s: control connection lost", seq[i][0])
		case <-ctx.Done():
			// The answer may still come: this connection is out of step.
			c.drop()
			return "", fmt.Errorf("tmux %s: no answer on the control connection: %w", seq[i][0], ctx.Err())
		}
	}
	if first != nil {
		return "", first
	}
	return out.String(), nil
}

// connect returns the connection, starting one if there is none and the
// last attempt was long enough ago. c.mu is held.
func (c *Control) connect(ctx context.Context) (*ctlConn, error) {
	if c.closed {
		return nil, fmt.Errorf("%w: closed", errCtlUnusable)
	}
	if c.conn != nil {
		select {
		case <-c.conn.done:
			c.drop()
		default:
			return c.conn, nil
		}
	}
	if time.Now().Before(c.retryAt) {
		return nil, fmt.Errorf("%w: reconnecting", errCtlUnusable)
	}
	conn, err := c.dial(ctx)
	if err != nil {
		c.backoff = min(max(2*c.backoff, 100*time.Millisecond), 5*time.Second)
		c.retryAt = time.Now().Add(c.backoff)
		return nil, fmt.Errorf("%w: %v", errCtlUnusable, err)
	}
	if c.Watch != "" {
		c.conn = conn
		if err := c.subscribe(ctx, conn); err != nil {
			c.drop()
			c.backoff = min(max(2*c.backoff, 100*time.Millisecond), 5*time.Second)
			c.retryAt = time.Now().Add(c.backoff)
			return nil, fmt.Errorf("%w: %v", errCtlUnusable, err)
		}
	}
	c.conn, c.backoff = conn, 0
	c.changed() // whatever happened while there was no connection
	return conn, nil
}

// PaneWatch is the format init watches: what says whether the agent's
// command runs (see PaneState). Not window_activity: the supervisor knows
// when the next after_idle time is due without being told of every output.
const PaneWatch = "#{pane_id} #{pane_dead} #{pane_dead_status} #{pane_dead_signal} #{pane_pid}"

// watchName names init's subscription; only its notifications count.
const watchName = "runner-pane"

// subscribe asks tmux for change notifications of c.Watch. c.mu is held.
func (c *Control) subscribe(ctx context.Context, conn *ctlConn) error {
	l, ok := ctlLine([]string{"refresh-client", "-B", watchName + ":%*:" + c.Watch})
	if !ok {
		return errors.New("the watched format holds a newline")
	}
	if _, err := io.WriteString(conn.in, l); err != nil {
		return err
	}
	tm := time.NewTimer(DefaultTimeout)
	defer tm.Stop()
	select {
	case r := <-conn.replies:
		if r.failed {
			return fmt.Errorf("refresh-client -B: %s", strings.Join(r.lines, "; "))
		}
		return nil
	case <-conn.done:
		return errors.New("control connection lost")
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return errors.New("no answer to refresh-client -B")
	}
}

// Changes returns a channel that receives (coalesced) whenever the watched
// format may have changed: tmux said so, or the connection was (re)made.
// cancel stops it.
func (c *Control) Changes() (ch <-chan struct{}, cancel func()) {
	k := make(chan struct{}, 1)
	c.subMu.Lock()
	if c.subs == nil {
		c.subs = map[chan struct{}]struct{}{}
	}
	c.subs[k] = struct{}{}
	c.subMu.Unlock()
	return k, func() {
		c.subMu.Lock()
		delete(c.subs, k)
		c.subMu.Unlock()
	}
}

func (c *Control) changed() {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	for k := range c.subs {
		select {
		case k <- struct{}{}:
		default:
		}
	}
}

// Watching reports whether change notifications are coming: the
// connection is up and subscribed. When it is not, the watchers poll (and
// their commands bring the connection back).
func (c *Control) Watching() bool {
	if c == nil || c.Watch == "" {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return false
	}
	select {
	case <-c.conn.done:
		return false
	default:
		return true
	}
}

// drop ends the current connection. c.mu is held.
func (c *Control) drop() {
	if c.conn != nil {
		c.conn.in.Close() // EOF on stdin: the client detaches and exits
		close(c.conn.quit)
		c.conn = nil
	}
}

// Close ends the connection for good; later commands fall back.
func (c *Control) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.drop()
}

func (c *Control) dial(ctx context.Context) (*ctlConn, error) {
	flags := "no-output,ignore-size"
	if c.OnOutput != nil {
		flags = "ignore-size"
	}
	cmd := exec.Command(c.Bin, "-u", "-f", "/dev/null", "-S", c.Socket, "-C",
		"attach-session", "-f", flags, "-t", "="+c.Session)
	cmd.WaitDelay = 2 * time.Second
	conn := &ctlConn{cmd: cmd, replies: make(chan ctlReply, 1), done: make(chan struct{}), quit: make(chan struct{})}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = &conn.stderr
	conn.in = in
	start, wait := c.Start, c.Wait
	if start == nil {
		start = (*exec.Cmd).Start
	}
	if wait == nil {
		wait = (*exec.Cmd).Wait
	}
	if err := start(cmd); err != nil {
		return nil, err
	}
	ready := make(chan struct{})
	go func() {
		readControl(out, ctlEvents{ready: ready, replies: conn.replies, quit: conn.quit,
			changed: c.changed, output: c.OnOutput, hook: conn.takeHook})
		in.Close()
		io.Copy(io.Discard, out)
		_ = wait(cmd)
		close(conn.done)
		c.changed() // watchers go back to looking for themselves
		if c.OnLost != nil {
			c.OnLost()
		}
	}()
	tm := time.NewTimer(DefaultTimeout)
	defer tm.Stop()
	select {
	case <-ready:
		return conn, nil
	case <-conn.done:
		msg := strings.TrimSpace(conn.stderr.String())
		if msg == "" {
			msg = "the control client exited"
		}
		return nil, errors.New(msg)
	case <-ctx.Done():
	case <-tm.C:
	}
	in.Close()
	return nil, errors.New("the control client did not attach")
}

// ctlHook takes the answer to one command line by line as it arrives,
// unbounded (a snapshot of the pane's whole scrollback), instead of Run.
type ctlHook interface {
	Line(string)
	End(failed bool)
}

// ctlEvents is where readControl sends what it reads.
type ctlEvents struct {
	ready   chan<- struct{}   // closed after the attach's own answer
	replies chan<- ctlReply   // the answers to our commands, in order
	quit    <-chan struct{}   // closed when nobody reads replies any more
	changed func()            // our subscription's notification
	output  func(rest string) // a %output line, without "%output "
	hook    func() ctlHook    // the hook of the command being answered, if any
}

// readControl parses the control client's output: the first block (the
// attach's own answer) closes ready; every later block with flags 1 (a
// command of ours) goes to replies (or to its hook); a
// %subscription-changed of ours calls changed, %output calls output;
// other notifications are ignored; %exit, the end of r, or anything
// malformed or too large ends it.
func readControl(r io.Reader, ev ctlEvents) {
	br := bufio.NewReaderSize(r, 64<<10)
	attached := false
	var (
		in    bool   // inside a block
		tag   string // its %begin's "TIME NUMBER FLAGS"
		ours  bool
		hook  ctlHook
		lines []string
		size  int
	)
	for {
		line, err := readLineBounded(br)
		if err != nil {
			return
		}
		if in {
			switch line {
			case "%end " + tag, "%error " + tag:
				in = false
				failed := strings.HasPrefix(line, "%error")
				if !attached {
					attached = true
					close(ev.ready)
				} else if ours {
					if hook != nil {
						hook.End(failed)
					}
					select {
					case ev.replies <- ctlReply{lines: lines, failed: failed}:
					case <-ev.quit:
						return
					}
				}
				lines, size, hook = nil, 0, nil
				continue
			}
			if hook != nil {
				hook.Line(line)
				continue
			}
			size += len(line)
			if size > ctlMaxReply {
				return
			}
			if ours {
				lines = append(lines, line)
			}
			continue
		}
		switch {
		case strings.HasPrefix(line, "%begin "):
			tag = strings.TrimPrefix(line, "%begin ")
			f := strings.Fields(tag)
			if len(f) != 3 || strings.Join(f, " ") != tag {
				return
			}
			in, ours = true, f[2] == "1"
			if ours && attached && ev.hook != nil {
				hook = ev.hook()
			}
		case line == "%exit" || strings.HasPrefix(line, "%exit "):
			return
		case strings.HasPrefix(line, "%output "):
			if ev.output != nil {
				ev.output(line[len("%output "):])
			}
		case strings.HasPrefix(line, "%subscription-changed "+watchName+" "):
			if ev.changed != nil {
				ev.changed()
			}
		}
	}
}

// readLineBounded reads one line without its newline; longer than
// ctlMaxLine is an error.
func readLineBounded(br *bufio.Reader) (string, error) {
	var buf []byte
	for {
		piece, err := br.ReadSlice('\n')
		buf = append(buf, piece...)
		if len(buf) > ctlMaxLine {
			return "", errors.New("line too long")
		}
		if err == nil {
			return string(buf[:len(buf)-1]), nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return "", err
		}
	}
}
