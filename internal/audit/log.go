package audit

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
)

// Log appends events to one audit log. It is safe for concurrent use, and
// several processes (the relay, apply, destroy, attach) may each have the same
// log open: every append takes an exclusive flock on the newest segment and
// first picks up lines the others added (and segments they started), so
// they all extend one chain.
type Log struct {
	mu      sync.Mutex
	path    string
	f       *os.File // the newest segment, at path
	ino     uint64   // f's inode
	size    int64    // f's size after our last look at the tail
	seq     uint64
	prev    string
	hdr     header // f's first line, when it starts a segment
	hdrIno  uint64 // the file hdr was read from
	opt     Options
	max     int64
	segMax  int64
	retired *os.File // a segment fn rotated away from, closed after unlock
	broken  error    // set when a write may have left a partial line
}

// Options bound the log's disk use. Zero fields take their defaults.
type Options struct {
	// Max is the cap for all segments together. Zero: EnvMax's value,
	// else the cap the newest segment records, else DefaultMax.
	Max int64
	// SegmentMax is the cap of each segment (zero: SegmentCap(Max)).
	SegmentMax int64
}

// Open opens (or creates, mode 0600) the audit log at path and continues its
// chain from the last line, repairing a torn last line (see repair). It
// refuses a file others can read or write, and a file whose last line is
// damaged.
func Open(path string) (*Log, error) { return OpenWith(path, Options{}) }

// OpenWith is Open with caps other than the defaults.
func OpenWith(path string, o Options) (*Log, error) {
	if v := os.Getenv(EnvMax); v != "" && o.Max == 0 {
		m, err := ParseSize(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvMax, err)
		}
		o.Max = m
	}
	if o.Max != 0 {
		seg := o.SegmentMax
		if seg == 0 {
			seg = SegmentCap(o.Max)
		}
		if seg < 1<<10 || o.Max < 2*seg {
			return nil, fmt.Errorf("audit log cap %d (segments of %d) is too small: it needs at least two segments of at least 1 KiB", o.Max, seg)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	l := &Log{path: path, f: f, size: -1, opt: o}
	l.ino = inode(f)
	err = l.locked(func() error {
		st, err := l.f.Stat()
		if err != nil {
			return fmt.Errorf("audit log %s: %w", path, err)
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("audit log %s is not a regular file: give a path to a file", path)
		}
		if st.Mode().Perm()&0o077 != 0 {
			return fmt.Errorf("audit log %s has mode %04o, others may read or change it: run chmod 600 on it", path, st.Mode().Perm())
		}
		return l.catchUp()
	})
	if err != nil {
		l.f.Close()
		return nil, err
	}
	return l, nil
}

func inode(f *os.File) uint64 {
	st, err := f.Stat()
	if err != nil {
		return 0
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

// locked runs fn holding the exclusive flock of the newest segment. A file
// that stopped being the newest while we waited (another writer started a
// segment) is swapped for the one now at path.
func (l *Log) locked(fn func() error) error {
	for {
		f := l.f
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			return fmt.Errorf("lock audit log %s: %w", l.path, err)
		}
		st, err := os.Lstat(l.path)
		if err != nil {
			syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
			return fmt.Errorf("audit log %s: %w (moved away: the run destroyed?)", l.path, err)
		}
		if st.Sys().(*syscall.Stat_t).Ino == l.ino {
			break
		}
		nf, err := os.OpenFile(l.path, os.O_RDWR|os.O_APPEND|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		if err != nil {
			return fmt.Errorf("open audit log: %w", err)
		}
		f.Close()
		l.f, l.ino, l.size = nf, inode(nf), -1
	}
	f := l.f
	err := fn()
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	if l.retired != nil {
		l.retired.Close()
		l.retired = nil
	}
	return err
}

// catchUp continues the chain from the file's last line if the file changed
// since we last looked. Call with the flock held.
func (l *Log) catchUp() error {
	st, err := l.f.Stat()
	if err != nil {
		return fmt.Errorf("audit log %s: %w", l.path, err)
	}
	size := st.Size()
	if size == l.size {
		return nil
	}
	if l.hdrIno != l.ino {
		if err := l.readHeader(size); err != nil {
			return err
		}
	}
	if size == 0 {
		l.size, l.seq, l.prev = 0, 0, genesis
		return nil
	}
	n := min(size, maxLine+1)
	tail := make([]byte, n)
	if _, err := l.f.ReadAt(tail, size-n); err != nil {
		return fmt.Errorf("read audit log %s: %w", l.path, err)
	}
	if tail[len(tail)-1] != '\n' {
		return l.repair(size)
	}
	last := tail[:len(tail)-1]
	if i := bytes.LastIndexByte(last, '\n'); i >= 0 {
		last = last[i+1:]
	} else if n < size {
		return fmt.Errorf("audit log %s: last line is longer than %d bytes, so it was not written by this package: move the file aside", l.path, maxLine)
	}
	e, err := parseLine(last)
	if err != nil {
		return fmt.Errorf("audit log %s: last line is damaged (%v): check it with runner audit --verify, then move the file aside to start a new chain", l.path, err)
	}
	l.size, l.seq, l.prev = size, e.Seq, e.Hash
	return nil
}

// readHeader learns the newest segment's number, cap and what was dropped
// from its first line, and sets the caps. Call with the flock held.
func (l *Log) readHeader(size int64) error {
	h := header{Seg: 1}
	if size == 0 {
		if ns, _ := segmentNumbers(l.path); len(ns) > 0 {
			return fmt.Errorf("audit log %s is empty but its older segments (%s) are there: the newest segment was removed; move them aside to start a new chain", l.path, segmentPath(l.path, ns[len(ns)-1]))
		}
	} else {
		first, err := firstLine(l.f)
		if err != nil {
			return fmt.Errorf("audit log %s: %w", l.path, err)
		}
		if first != nil && first.Event == EventSegment {
			if h, err = parseHeader(first.Detail); err != nil {
				return fmt.Errorf("audit log %s: first line: %w", l.path, err)
			}
		}
	}
	l.hdr, l.hdrIno = h, l.ino
	l.max, l.segMax = l.opt.Max, l.opt.SegmentMax
	if l.max == 0 {
		l.max = h.Max
	}
	if l.max == 0 {
		l.max = DefaultMax
	}
	if l.segMax == 0 {
		l.segMax = SegmentCap(l.max)
	}
	return nil
}

// Append writes e as the next line of the chain and syncs it to disk before
// returning.
func (l *Log) Append(e Event) error { return l.AppendBatch([]Event{e}) }

// AppendBatch writes events as consecutive lines of the chain under one flock,
// with one write and one fsync, so a caller that commits many decisions at
// once (the relay's group commit) pays for one sync. Either every line is
// on disk when it returns nil, or the log is broken and says so. An empty
// batch is a no-op.
func (l *Log) AppendBatch(events []Event) error {
	if len(events) == 0 {
		return nil
	}
	for _, e := range events {
		if !eventName.MatchString(e.Event) {
			return fmt.Errorf("audit: event name %q must be lowercase letters and '_'", e.Event)
		}
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.broken != nil {
		return l.broken
	}
	return l.locked(func() error { return l.append(events, now) })
}

func (l *Log) append(events []Event, now time.Time) error {
	if err := l.catchUp(); err != nil {
		return err
	}
	buf, seq, prev, err := encode(events, now, l.seq, l.prev)
	if err != nil {
		return err
	}
	if l.size > 0 && l.size+int64(len(buf)) > l.segMax {
		if err := l.rotate(events, now); err != nil {
			l.broken = fmt.Errorf("audit log %s: starting a new segment failed (%v): check the disk, then restart", l.path, err)
			return l.broken
		}
		return nil
	}
	// One write call, so the batch is never interleaved with another writer's
	// lines (they hold the flock too, and O_APPEND puts it at the end).
	if _, err := l.f.Write(buf); err != nil {
		l.broken = fmt.Errorf("audit log %s: write failed (%v); the file may end in a partial line, which the next writer cuts: free space, then restart", l.path, err)
		return l.broken
	}
	if err := l.f.Sync(); err != nil {
		l.broken = fmt.Errorf("audit log %s: sync failed (%v): check the disk, then restart", l.path, err)
		return l.broken
	}
	l.size += int64(len(buf))
	l.seq, l.prev = seq, prev
	return nil
}

// encode seals events as the lines after seq (whose hash is prev).
func encode(events []Event, now time.Time, seq uint64, prev string) ([]byte, uint64, string, error) {
	var buf []byte
	for _, e := range events {
		t := e.Time
		if t.IsZero() {
			t = now
		}
		ent := entry{
			Seq:    seq + 1,
			Time:   t.UTC().Format(time.RFC3339Nano),
			Event:  e.Event,
			Actor:  clean(e.Actor, maxActor),
			Target: clean(e.Target, maxActor),
			Detail: clean(e.Detail, maxDetail),
			Prev:   prev,
		}
		line, err := ent.seal()
		if err != nil {
			return nil, 0, "", fmt.Errorf("audit: encode event: %w", err)
		}
		buf = append(append(buf, line...), '\n')
		seq, prev = ent.Seq, ent.Hash
	}
	return buf, seq, prev, nil
}

// Close closes the file. Appending after Close fails.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.broken == nil {
		l.broken = fmt.Errorf("audit log %s is closed", l.path)
	}
	return l.f.Close()
}
