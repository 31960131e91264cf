package transcript

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/runner-dev/runner/internal/chain"
)

// Writer appends records to one agent's transcript, starting a new segment
// when one is full and dropping the oldest only past the total cap. It is
// safe for concurrent use (an agent's old and new container may both be
// streaming for a moment); one process at a time may hold it (a flock on
// the directory), so two recorders cannot fork the chain.
type Writer struct {
	mu     sync.Mutex
	dir    string   // the agent's directory
	lock   *os.File // holds the flock
	max    int64    // all segments together
	segMax int64    // one segment
	chunk  int      // the most data bytes in one record

	f      *os.File // the newest segment, nil until the first record
	seg    uint64   // its number
	size   int64    // its size
	older  []segment
	seq    uint64 // the last record's
	prev   string // and its hash
	output time.Time
	drop   *Drop
	closed bool

	// Output waiting to be written, so that a pane printing a little at a
	// time does not cost a record (some 250 bytes) per keystroke: it is
	// written once it fills a record, when output comes Coalesce after its
	// first byte, or Coalesce later.
	pending  []byte
	pendingT time.Time
	timer    *time.Timer
	err      error // of a write the timer made
}

// Coalesce is how long output may wait to join a record; a record's time
// is when its first byte arrived.
const Coalesce = 100 * time.Millisecond

// segment is a file of the transcript older than the newest.
type segment struct {
	n    uint64
	size int64
}

// Open opens agent's transcript in dir for appending, creating the
// directories (0700) if needed, and continues its chain. max is the cap for
// all segments together (0: DefaultMax); segMax that of each (0:
// SegmentCap(max)).
func Open(dir, agent string, max, segMax int64) (*Writer, error) {
	if max == 0 {
		max = DefaultMax
	}
	if segMax == 0 {
		segMax = SegmentCap(max)
	}
	if segMax < MinSegment || max < 2*segMax {
		return nil, fmt.Errorf("transcript cap %d (segments of %d) is too small: it needs at least two segments of at least %d bytes", max, segMax, MinSegment)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	adir := Dir(dir, agent)
	if err := os.Mkdir(adir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, err
	}
	lock, err := os.Open(adir)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("transcript %s is being written by another process (a second recorder?): %w", adir, err)
	}
	w := &Writer{dir: adir, lock: lock, max: max, segMax: segMax, prev: chain.Genesis}
	// A record of n data bytes takes at most 4*ceil(n/3) + 256 bytes; a
	// segment header at most 512.
	w.chunk = min(MaxChunk, int((segMax-1024)/4*3))
	if err := w.resume(); err != nil {
		w.Close()
		return nil, fmt.Errorf("transcript %s: %w", adir, err)
	}
	return w, nil
}

// segments lists the numbers of the segment files in an agent's directory,
// oldest first.
func segments(adir string) ([]uint64, error) {
	ents, err := os.ReadDir(adir)
	if err != nil {
		return nil, err
	}
	var ns []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".log")
		if n, err := strconv.ParseUint(name, 10, 64); ok && err == nil && n > 0 && len(name) >= 6 && e.Type().IsRegular() {
			ns = append(ns, n)
		}
	}
	slices.Sort(ns)
	return ns, nil
}

func (w *Writer) path(n uint64) string { return fmt.Sprintf("%s/%06d.log", w.dir, n) }

// resume picks up the chain where the newest segment ends. A last line cut
// short (a recorder killed mid-write) is cut off; segments the newest
// header says were dropped (a recorder killed while dropping them) go.
func (w *Writer) resume() error {
	ns, err := segments(w.dir)
	if err != nil {
		return err
	}
	for len(ns) > 0 {
		n := ns[len(ns)-1]
		s, err := scanSegment(w.path(n))
		if err != nil {
			return err
		}
		if s.records == 0 {
			// Created, but its header never written: not part of the chain.
			if err := os.Remove(w.path(n)); err != nil {
				return err
			}
			ns = ns[:len(ns)-1]
			continue
		}
		if s.good < s.size {
			if err := os.Truncate(w.path(n), s.good); err != nil {
				return err
			}
		}
		w.seg, w.size, w.seq, w.prev, w.drop = n, s.good, s.lastSeq, s.lastHash, s.drop
		w.output = s.lastOutput
		break
	}
	if w.seg == 0 {
		return nil
	}
	for _, n := range ns[:len(ns)-1] {
		if w.drop != nil && n <= w.drop.Seg {
			os.Remove(w.path(n))
			continue
		}
		fi, err := os.Stat(w.path(n))
		if err != nil {
			return err
		}
		w.older = append(w.older, segment{n, fi.Size()})
		if w.output.IsZero() {
			if s, err := scanSegment(w.path(n)); err == nil {
				w.output = s.lastOutput
			}
		}
	}
	f, err := os.OpenFile(w.path(w.seg), os.O_WRONLY|os.O_APPEND|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	w.f = f
	return nil
}

// scanned is what scanSegment learnt of one segment, reading it leniently.
type scanned struct {
	size, good        int64 // bytes, and up to the end of the last whole line
	records           int
	lastSeq           uint64
	lastHash          string
	drop              *Drop // the header's
	bytes             int64 // of output
	firstOut, lastOut time.Time
	lastOutput        time.Time
}

func scanSegment(path string) (scanned, error) {
	var s scanned
	f, err := os.Open(path)
	if err != nil {
		return s, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	for {
		line, err := r.ReadSlice('\n')
		s.size += int64(len(line))
		if errors.Is(err, bufio.ErrBufferFull) {
			// Not ours; skip the rest of it.
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = r.ReadSlice('\n')
				s.size += int64(len(line))
			}
			if err == nil {
				s.good = s.size
			}
			continue
		}
		if err == io.EOF {
			return s, nil
		}
		if err != nil {
			return s, err
		}
		s.good = s.size
		e, derr := decode(bytes.TrimSuffix(line, []byte("\n")))
		if derr != nil {
			continue
		}
		s.records++
		s.lastSeq, s.lastHash = e.Seq, e.Hash
		switch {
		case e.Ev == evSegment:
			s.drop = e.Drop
		case e.Ev == "":
			if s.firstOut.IsZero() {
				s.firstOut = e.T
			}
			s.lastOut, s.lastOutput = e.T, e.T
			s.bytes += int64(len(e.B))
		}
	}
}

// Modified is when pane output was last received, zero if never.
func (w *Writer) Modified() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) > 0 {
		return w.pendingT
	}
	return w.output
}

// Write records p as received at time t, in as many records as it takes,
// within Coalesce.
func (w *Writer) Write(t time.Time, p []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("transcript: writer closed")
	}
	if len(w.pending) > 0 && (t.Sub(w.pendingT) >= Coalesce || t.Before(w.pendingT)) {
		if err := w.flush(); err != nil {
			return err
		}
	}
	if len(w.pending) == 0 {
		w.pendingT = t
	}
	w.pending = append(w.pending, p...)
	for len(w.pending) >= w.chunk {
		if err := w.append(entry{T: w.pendingT, B: w.pending[:w.chunk]}); err != nil {
			return err
		}
		w.output = w.pendingT
		w.pending = w.pending[w.chunk:]
	}
	if len(w.pending) > 0 && w.timer == nil {
		w.timer = time.AfterFunc(Coalesce, func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.timer = nil
			if err := w.flush(); err != nil && w.err == nil {
				w.err = err
			}
		})
	}
	return nil
}

// flush writes the pending output. Call with mu held.
func (w *Writer) flush() error {
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	if len(w.pending) == 0 || w.closed {
		return nil
	}
	err := w.append(entry{T: w.pendingT, B: w.pending})
	w.output = w.pendingT
	w.pending = w.pending[:0]
	return err
}

// Note records an event of the recorder's (EventStream, EventStreamEnd)
// with a short printable detail, after the output before it.
func (w *Writer) Note(t time.Time, ev, detail string) error {
	if ev != evStream && ev != evStreamEnd {
		return fmt.Errorf("transcript: unknown event %q", ev)
	}
	if len(detail) > maxDetail || !detailSyntax.MatchString(detail) {
		detail = strconv.QuoteToASCII(detail)
		detail = detail[:min(len(detail), maxDetail)]
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.flush(); err != nil {
		return err
	}
	return w.append(entry{T: t, Ev: ev, D: detail})
}

// Stream events, for the recorder.
const (
	EventStream    = evStream
	EventStreamEnd = evStreamEnd
)

// append seals e as the next record, starting a segment first if there is
// none or e would not fit in this one. Call with mu held.
func (w *Writer) append(e entry) error {
	if w.closed {
		return errors.New("transcript: writer closed")
	}
	e.Seq, e.Prev = w.seq+1, w.prev
	line, err := e.seal()
	if err != nil {
		return err
	}
	if w.f == nil || w.size+int64(len(line)) > w.segMax {
		if err := w.next(e.T); err != nil {
			return err
		}
		e.Seq, e.Prev = w.seq+1, w.prev
		if line, err = e.seal(); err != nil {
			return err
		}
	}
	if err := w.write(line, e); err != nil {
		return err
	}
	return nil
}

func (w *Writer) write(line []byte, e entry) error {
	n, err := w.f.Write(line)
	w.size += int64(n)
	if err != nil {
		// The file may now end in a partial line: the next record goes into
		// a segment of its own, and Verify shows where.
		w.f.Close()
		w.f = nil
		w.older = append(w.older, segment{w.seg, w.size})
		return fmt.Errorf("transcript %s: %w", w.path(w.seg), err)
	}
	w.seq, w.prev = e.Seq, e.Hash
	return nil
}

// next closes the newest segment and starts the one after it: it drops the
// oldest segments until the rest and a full new one fit within the cap,
// writes the new segment's header (saying what was dropped), and only then
// deletes the dropped files. Call with mu held.
func (w *Writer) next(t time.Time) error {
	if w.f != nil {
		if err := w.f.Sync(); err != nil {
			return err
		}
		if err := w.f.Close(); err != nil {
			return err
		}
		w.f = nil
		w.older = append(w.older, segment{w.seg, w.size})
	}
	w.seg++
	f, err := os.OpenFile(w.path(w.seg), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	w.f, w.size = f, 0
	var total int64
	for _, s := range w.older {
		total += s.size
	}
	var gone []uint64
	drop := w.drop
	for len(w.older) > 0 && total+w.segMax > w.max {
		old := w.older[0]
		s, err := scanSegment(w.path(old.n))
		if err != nil {
			return err
		}
		d := Drop{Seg: old.n, Seq: s.lastSeq, Last: s.lastHash, Bytes: s.bytes, From: s.firstOut, To: s.lastOut}
		if drop != nil {
			d.Bytes += drop.Bytes
			d.From = drop.From
			if d.To.IsZero() {
				d.To = drop.To
			}
		}
		if d.From.IsZero() {
			d.From = s.firstOut
		}
		drop = &d
		gone = append(gone, old.n)
		total -= old.size
		w.older = w.older[1:]
	}
	w.drop = drop
	e := entry{Seq: w.seq + 1, T: t, Ev: evSegment, Seg: w.seg, Drop: drop, Prev: w.prev}
	line, err := e.seal()
	if err != nil {
		return err
	}
	if err := w.write(line, e); err != nil {
		return err
	}
	if len(gone) > 0 {
		if err := w.f.Sync(); err != nil {
			return err
		}
		for _, n := range gone {
			if err := os.Remove(w.path(n)); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close syncs and closes the newest segment and releases the directory.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	err := w.flush()
	w.closed = true
	if w.f != nil {
		err = errors.Join(err, w.f.Sync(), w.f.Close())
		w.f = nil
	}
	// Unlocked before the close: a child being forked at this moment holds
	// the lock's file until its exec, and the next recorder must get it.
	_ = syscall.Flock(int(w.lock.Fd()), syscall.LOCK_UN)
	w.lock.Close()
	return err
}

var _ io.Closer = (*Writer)(nil)
