package transcript

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
)

// ReadOptions selects what Read returns.
type ReadOptions struct {
	// Since skips records made before it (zero: none skipped).
	Since time.Time
	// Follow keeps reading as the transcript grows, across segments, until
	// ctx ends or Stop returns true.
	Follow bool
	// Poll is how often a follow looks for new data (0: 200ms).
	Poll time.Duration
	// Stop, if set, is asked at every poll whether a follow should end
	// (e.g. the run was destroyed).
	Stop func() bool
}

// maxLine bounds a line a reader keeps; a longer one is not ours and is
// skipped (records are at most about 44 KiB).
const maxLine = 1 << 20

// Read calls fn with every record of agent's output in dir, oldest first,
// segment after segment. If output was dropped at the cap, the first
// record is the notice saying so (Record.Dropped); segments dropped while
// Read was reading get a notice too, with Bytes -1 (not known). Lines that do not decode
// are skipped: Read does not check the chain (Verify does). Without Follow
// it returns at the end of the newest segment (ErrNoTranscript if there is
// none); with Follow it waits for the transcript to appear, then for more,
// until ctx ends (returning nil) or Stop says so.
func Read(ctx context.Context, dir, agent string, o ReadOptions, fn func(Record) error) error {
	poll := o.Poll
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	adir := Dir(dir, agent)
	stopped := func() bool {
		return ctx.Err() != nil || (o.Stop != nil && o.Stop())
	}
	var ns []uint64
	for {
		var err error
		ns, err = segments(adir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if len(ns) > 0 {
			break
		}
		if !o.Follow {
			return fmt.Errorf("%w for %s in %s", ErrNoTranscript, agent, dir)
		}
		if stopped() || sleep(ctx, poll) != nil {
			return nil
		}
	}
	emit := func(line []byte) error {
		e, err := decode(line)
		if err != nil || e.Ev != "" || e.T.Before(o.Since) {
			return nil
		}
		return fn(Record{Time: e.T, Data: e.B})
	}
	// What was dropped before the oldest segment still here: the newest
	// header says.
	drop := newestDrop(adir, ns)
	if drop != nil && !drop.To.Before(o.Since) {
		if err := fn(Record{Time: drop.To, Dropped: drop}); err != nil {
			return err
		}
	}
	i, prev := 0, uint64(0) // prev: the last segment read, or accounted for
	if drop != nil {
		prev = drop.Seg
	}
	for i < len(ns) && ns[i] <= prev {
		i++ // recorded as dropped, not yet deleted
	}
	gap := false
	for ; i < len(ns); i++ {
		f, err := os.Open(fmt.Sprintf("%s/%06d.log", adir, ns[i]))
		if errors.Is(err, fs.ErrNotExist) {
			gap = true // dropped at the cap since we listed it
			continue
		}
		if err != nil {
			return err
		}
		if gap || ns[i] != prev+1 {
			// Segments went before we got to them (or were deleted): how
			// much text they held is not known here (Bytes -1).
			if err := fn(Record{Time: time.Now(), Dropped: &Drop{Seg: ns[i] - 1, Bytes: -1}}); err != nil {
				f.Close()
				return err
			}
			gap = false
		}
		err = readSegment(ctx, f, emit, o.Follow && i == len(ns)-1, func() (bool, error) {
			// At the end of the newest segment while following: is there
			// a newer one, or do we wait?
			more, err := segments(adir)
			if err != nil {
				return false, err
			}
			if len(more) > 0 && more[len(more)-1] > ns[i] {
				ns = append(ns[:i+1], newer(more, ns[i])...)
				return true, nil
			}
			if stopped() || sleep(ctx, poll) != nil {
				return false, nil
			}
			return false, errWait
		})
		f.Close()
		if err != nil {
			return err
		}
		prev = ns[i]
	}
	return nil
}

var errWait = errors.New("wait")

func newer(ns []uint64, than uint64) []uint64 {
	var out []uint64
	for _, n := range ns {
		if n > than {
			out = append(out, n)
		}
	}
	return out
}

// readSegment emits the lines of f. If follow, at its end it asks atEnd
// whether a newer segment exists (true: read f once more, then return),
// whether to stop (false, nil) or to look again (errWait).
func readSegment(ctx context.Context, f *os.File, emit func([]byte) error, follow bool, atEnd func() (bool, error)) error {
	l := &lines{r: f}
	for {
		n, err := l.each(emit)
		if err != nil || !follow {
			return err
		}
		if n > 0 {
			continue // there may be more already
		}
		moved, err := atEnd()
		switch {
		case errors.Is(err, errWait):
			continue
		case err != nil:
			return err
		case moved:
			// The writer finished this segment before starting the next:
			// what it added since our last read is there now.
			_, err := l.each(emit)
			return err
		default:
			return nil
		}
	}
}

// newestDrop is what the header of the newest readable segment in ns says
// was dropped.
func newestDrop(adir string, ns []uint64) *Drop {
	for i := len(ns) - 1; i >= 0; i-- {
		f, err := os.Open(fmt.Sprintf("%s/%06d.log", adir, ns[i]))
		if err != nil {
			continue
		}
		var e entry
		var found bool
		(&lines{r: io.LimitReader(f, 64<<10)}).each(func(line []byte) error {
			if h, err := decode(line); err == nil && h.Ev == evSegment {
				e, found = h, true
			}
			return errWait // only the first line
		})
		f.Close()
		if found {
			return e.Drop
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// lines reads complete lines from r as they become available; a line
// without its newline yet waits in pend for the rest.
type lines struct {
	r    io.Reader
	pend []byte
	skip bool // dropping the rest of an overlong line
	buf  []byte
}

// each calls fn with every complete line available now and returns how
// many bytes it read.
func (l *lines) each(fn func([]byte) error) (int, error) {
	if l.buf == nil {
		l.buf = make([]byte, 64<<10)
	}
	total := 0
	for {
		n, err := l.r.Read(l.buf)
		total += n
		data := l.buf[:n]
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				if !l.skip {
					l.pend = append(l.pend, data...)
					if len(l.pend) > maxLine {
						l.pend, l.skip = l.pend[:0], true
					}
				}
				break
			}
			line := data[:i]
			data = data[i+1:]
			if l.skip {
				l.skip = false
				continue
			}
			if len(l.pend) > 0 {
				l.pend = append(l.pend, line...)
				line = l.pend
			}
			ferr := fn(line)
			l.pend = l.pend[:0]
			if ferr != nil {
				return total, ferr
			}
		}
		if err == io.EOF || (err == nil && n == 0) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}
