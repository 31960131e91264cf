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
	// Follow keeps reading as the transcript grows, across rotations, until
	// ctx ends or Stop returns true.
	Follow bool
	// Poll is how often a follow looks for new data (0: 200ms).
	Poll time.Duration
	// Stop, if set, is asked at every poll whether a follow should end
	// (e.g. the run was destroyed).
	Stop func() bool
}

// ErrNoTranscript means the agent has no transcript in the directory.
var ErrNoTranscript = errors.New("no transcript")

// maxLine bounds a line a reader keeps; a longer one is not ours and is
// skipped (records are at most about 44 KiB).
const maxLine = 1 << 20

// Read calls fn with every record of agent's transcript in dir, oldest
// first: the previous file, then the current one. Lines that do not decode
// are skipped. Without Follow it returns at the end of the current file
// (ErrNoTranscript if there is none); with Follow it waits for the file to
// appear, then for more, until ctx ends (returning nil) or Stop says so.
func Read(ctx context.Context, dir, agent string, o ReadOptions, fn func(Record) error) error {
	poll := o.Poll
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	path := Path(dir, agent)
	emit := func(line []byte) error {
		rec, err := Decode(line)
		if err != nil || rec.Time.Before(o.Since) {
			return nil
		}
		return fn(rec)
	}
	stopped := func() bool {
		return ctx.Err() != nil || (o.Stop != nil && o.Stop())
	}
	// The current file first, then the previous one: if a rotation comes in
	// between, both are the same file, and it is read once.
	cur, err := os.Open(path)
	for errors.Is(err, fs.ErrNotExist) && o.Follow {
		if stopped() || sleep(ctx, poll) != nil {
			return nil
		}
		cur, err = os.Open(path)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w for %s in %s", ErrNoTranscript, agent, dir)
	}
	if err != nil {
		return err
	}
	defer func() { cur.Close() }()
	if prev, err := os.Open(path + ".1"); err == nil {
		same := sameFile(prev, cur)
		if !same {
			_, err = (&lines{r: prev}).each(emit)
		}
		prev.Close()
		if err != nil {
			return err
		}
	}
	l := &lines{r: cur}
	for {
		n, err := l.each(emit)
		if err != nil || !o.Follow {
			return err
		}
		if n > 0 {
			continue // there may be more already
		}
		// At the end of cur: has it been rotated away?
		if fi, err := os.Stat(path); err == nil {
			if ci, err := cur.Stat(); err == nil && !os.SameFile(fi, ci) {
				// Finish the old file (the writer may have added to it
				// just before rotating), then go on with the new one.
				if _, err := l.each(emit); err != nil {
					return err
				}
				next, err := os.Open(path)
				if err == nil {
					cur.Close()
					cur, l = next, &lines{r: next}
					continue
				}
			}
		}
		if stopped() || sleep(ctx, poll) != nil {
			return nil
		}
	}
}

func sameFile(a, b *os.File) bool {
	ai, err1 := a.Stat()
	bi, err2 := b.Stat()
	return err1 == nil && err2 == nil && os.SameFile(ai, bi)
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
