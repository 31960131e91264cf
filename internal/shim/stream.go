package shim

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// `runner-agent stream` is what the host's transcript recorder runs in each
// container (through the engine's exec API): it writes everything the agent
// pane prints to standard output, as raw bytes, until tmux exits.
//
// It is a read-only tmux control-mode client (tmux -C attach-session -r).
// tmux reports what a pane's program writes as lines
//
//	%output %PANE VALUE
//
// where VALUE is the bytes with those below 32 and the backslash written as
// \ooo (octal); every other byte is itself. First, through the same client,
// it asks for a snapshot of the pane (capture-pane -e -p), and writes that,
// so a recorder that starts late has the context. tmux answers commands in
// order with its output, so %output lines before the snapshot's answer are
// already in it (and dropped), and those after it are new.
//
// The agent owns its tmux server and this process runs as its uid, so what
// the stream reports is what the agent lets tmux see; what it reported
// before is on the host, out of the agent's reach.

const streamUsage = `usage: runner-agent stream [--socket PATH] [--history N] [--header]
  Write everything the agent's pane prints to stdout (raw bytes, escape
  sequences included), starting with a snapshot of the pane, until tmux
  exits. If stdin is a pipe, the stream also ends when it is closed.
`

// StreamHeader is what `runner-agent stream --header` writes before the
// pane's bytes, so that its reader can tell the stream from a message the
// engine writes in its place (Docker puts "OCI runtime exec failed: ..." on
// the exec's stdout).
const StreamHeader = "runner-agent stream 1\n"

// StreamOptions configures Tmux.Stream.
type StreamOptions struct {
	// History is how much scrollback the initial snapshot holds: < 0 all of
	// it, 0 the visible screen only, N the last N lines above the screen.
	History int
	// Out receives the pane's bytes.
	Out io.Writer
	// Header, if set, is written to Out first.
	Header string
}

var paneIDRE = regexp.MustCompile(`^%[0-9]+$`)

// cmdStream is `runner-agent stream`.
func cmdStream(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs, socket := flags("stream", stderr)
	history := fs.Int("history", -1, "scrollback `lines` in the initial snapshot (-1: all, 0: the screen only)")
	header := fs.Bool("header", false, "write StreamHeader first")
	fs.Usage = func() { fmt.Fprint(stderr, streamUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		return ExitUsage
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer cancel()
	if watchStdin(stdin) {
		// The recorder keeps stdin open while it reads: when it goes away,
		// so does this stream, however quiet the pane is.
		go func() {
			io.Copy(io.Discard, stdin)
			cancel()
		}()
	}
	t := &Tmux{Socket: *socket}
	o := StreamOptions{History: *history, Out: stdout}
	if *header {
		o.Header = StreamHeader
	}
	if ok, err := streamFromInit(ctx, *socket, o); ok {
		if err != nil && ctx.Err() == nil {
			fmt.Fprintf(stderr, "runner-agent: stream: %v\n", err)
			return 1
		}
		return 0
	}
	if err := t.Stream(ctx, o); err != nil && ctx.Err() == nil {
		fmt.Fprintf(stderr, "runner-agent: stream: %v\n", err)
		return 1
	}
	return 0
}

// watchStdin: a pipe or socket, or a reader that is not a file at all.
func watchStdin(stdin io.Reader) bool {
	if stdin == nil {
		return false
	}
	f, ok := stdin.(*os.File)
	if !ok {
		return true
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&(os.ModeNamedPipe|os.ModeSocket) != 0
}

// paneID resolves the agent pane to its id (%N).
func (t *Tmux) paneID(ctx context.Context) (string, error) {
	target, err := agentPane(ctx, t)
	if err != nil {
		return "", err
	}
	if !paneIDRE.MatchString(target) {
		out, err := t.exec(ctx, "display-message", "-p", "-t", target, "#{pane_id}")
		if err != nil {
			return "", err
		}
		target = strings.TrimSpace(out)
	}
	if !paneIDRE.MatchString(target) {
		return "", fmt.Errorf("tmux: unexpected pane id %q", target)
	}
	return target, nil
}

// Stream writes the agent pane's snapshot, then everything it prints, to
// o.Out until tmux exits (nil), ctx ends (ctx's error), or writing fails.
func (t *Tmux) Stream(ctx context.Context, o StreamOptions) error {
	pane, err := t.paneID(ctx)
	if err != nil {
		return err
	}
	cmd, err := t.command(ctx, [][]string{{"attach-session", "-r", "-t", "=" + SessionName}})
	if err != nil {
		return err
	}
	// Control mode is a client flag: it goes before the command.
	cmd.Args = append([]string{cmd.Args[0], "-C"}, cmd.Args[1:]...)
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	// Ending the client politely: EOF on its stdin detaches it.
	cmd.Cancel = func() error { return in.Close() }
	if err := cmd.Start(); err != nil {
		return err
	}
	start := "-"
	switch {
	case o.History == 0:
		start = "0"
	case o.History > 0:
		start = "-" + strconv.Itoa(o.History)
	}
	// Only values made here go on this line (tmux parses it as commands).
	_, werr := fmt.Fprintf(in, "capture-pane -p -e -S %s -t %s\n", start, pane)
	perr := decodeControl(out, pane, o.Header, o.Out)
	if perr != nil {
		in.Close()
	}
	io.Copy(io.Discard, out)
	err = cmd.Wait()
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case perr != nil:
		return perr
	case werr != nil:
		return werr
	case err != nil:
		msg := strings.TrimSpace(stderr.String())
		if strings.HasPrefix(msg, "no server running") || strings.HasPrefix(msg, "error connecting to") {
			return fmt.Errorf("%w on %s", ErrNoServer, t.Socket)
		}
		return fmt.Errorf("tmux control client: %v: %s", err, msg)
	}
	return nil
}

// decodeControl reads tmux control-mode output from r and writes to w the
// header, the answer to the first command this client sent (the snapshot), then the
// decoded %output of pane. It returns at the end of r or when writing fails.
// A line is handled in pieces as it arrives, so its length is not bounded
// here.
func decodeControl(r io.Reader, pane, header string, w io.Writer) error {
	br := bufio.NewReaderSize(r, 64<<10)
	bw := bufio.NewWriterSize(w, 32<<10)
	bw.WriteString(header)
	var (
		inLine  bool   // in the middle of a line
		kind    byte   // of that line: 'o' our output, 's' snapshot text, 0 ignored
		oct     []byte // a \ooo escape split between pieces
		block   string // the arguments of the snapshot's %begin
		snapped bool   // the snapshot's answer is over
		blanks  int    // snapshot lines that were empty, not written yet
		empty   bool   // the current snapshot line is empty so far
	)
	outPrefix := "%output " + pane + " "
	extPrefix := "%extended-output " + pane + " "
	for {
		piece, err := br.ReadSlice('\n')
		complete := err == nil
		body := piece
		if complete {
			body = body[:len(body)-1]
		}
		if !inLine && len(piece) > 0 {
			line := string(body)
			kind = 0
			switch {
			case block != "" && !snapped:
				if line == "%end "+block || line == "%error "+block {
					snapped = true
					break
				}
				kind, empty = 's', true
			case !snapped && strings.HasPrefix(line, "%begin ") && strings.HasSuffix(line, " 1"):
				// Flag 1: a command this client sent. The snapshot is the
				// only one.
				block = strings.TrimPrefix(line, "%begin ")
			case snapped && bytes.HasPrefix(body, []byte(outPrefix)):
				kind, body = 'o', body[len(outPrefix):]
			case snapped && bytes.HasPrefix(body, []byte(extPrefix)):
				// %extended-output %PANE AGE ... : VALUE
				if i := bytes.Index(body, []byte(" : ")); i >= 0 {
					kind, body = 'o', body[i+3:]
				}
			case strings.HasPrefix(line, "%exit"):
				if complete {
					return bw.Flush()
				}
			}
		}
		switch kind {
		case 'o':
			oct = unescapeOctal(bw, oct, body)
		case 's':
			if len(body) > 0 {
				if empty {
					for ; blanks > 0; blanks-- {
						bw.WriteString("\r\n")
					}
				}
				empty = false
				bw.Write(body)
			}
			if complete {
				if empty {
					blanks++ // trailing blank lines of the screen are dropped
				} else {
					bw.WriteString("\r\n")
				}
			}
		}
		inLine = !complete
		if complete {
			oct = oct[:0]
		}
		if br.Buffered() == 0 || bw.Buffered() > 16<<10 {
			if ferr := bw.Flush(); ferr != nil {
				return ferr
			}
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return bw.Flush()
		}
	}
}

// unescapeOctal writes p to w with tmux's \ooo escapes decoded; pend holds
// an escape cut off at the end of the previous piece and the one cut off at
// the end of p is returned.
func unescapeOctal(w *bufio.Writer, pend, p []byte) []byte {
	for _, b := range p {
		if len(pend) > 0 {
			pend = append(pend, b)
			if len(pend) < 4 {
				continue
			}
			if v, ok := octal(pend[1:]); ok {
				w.WriteByte(v)
			} else {
				w.Write(pend) // not an escape after all
			}
			pend = pend[:0]
			continue
		}
		if b == '\\' {
			pend = append(pend, b)
			continue
		}
		w.WriteByte(b)
	}
	return pend
}

func octal(d []byte) (byte, bool) {
	v := 0
	for _, c := range d {
		if c < '0' || c > '7' {
			return 0, false
		}
		v = v*8 + int(c-'0')
	}
	return byte(v), v < 256
}
