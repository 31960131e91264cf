package audit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// Report is what VerifyReport found.
type Report struct {
	Entries  int    // lines that verified
	FirstSeq uint64 // the first kept line's sequence number (1 unless dropped)
	LastSeq  uint64
	Segments int      // files the kept chain spans
	Dropped  *Drop    // what the cap dropped, nil if nothing
	Repairs  []Repair // torn tails cut by a writer, as the chain records them
}

// Repair is one EventRepaired entry.
type Repair struct {
	Seq    uint64
	Time   time.Time
	Detail string
}

// Verify reads the log at path, all its segments, and checks every line:
// canonical encoding, its own hash, the link to the line before (across
// segments too) and consecutive sequence numbers. It returns how many lines
// verified, and for the first bad line an error naming it.
func Verify(path string) (int, error) {
	r, err := VerifyReport(path)
	return r.Entries, err
}

// VerifyReport is Verify, also saying what the cap dropped and which
// repairs the chain records. A chain whose oldest segments were dropped
// must start exactly after the last dropped entry the newest segment names.
func VerifyReport(path string) (Report, error) {
	var rep Report
	segs, live, err := openSegments(path)
	if err != nil {
		return rep, fmt.Errorf("verify audit log: %w", err)
	}
	defer closeAll(segs)
	rep.Dropped, rep.Segments = live.Drop, len(segs)
	want, prev := uint64(1), genesis
	if live.Drop != nil {
		want, prev = live.Drop.Seq+1, live.Drop.Hash
	}
	n := uint64(1)
	if live.Drop != nil {
		n = live.Drop.Seg + 1
	}
	for _, s := range segs {
		if s.n != n {
			return rep, fmt.Errorf("audit log %s: segment %d is missing (%s): it was deleted or moved other than at the cap", path, n, segmentPath(path, n))
		}
		n++
	}
	for _, s := range segs {
		n := s.n
		err := scan(s.f, s.name, true, func(lineNo int, e entry) error {
			if lineNo == 1 && n > 1 {
				h, err := parseHeader(e.Detail)
				if e.Event != EventSegment || err != nil || h.Seg != n {
					return fmt.Errorf("audit log %s line 1: not the header of segment %d (segments were renamed or replaced)", s.name, n)
				}
			}
			if e.Seq != want {
				return fmt.Errorf("audit log %s line %d: sequence number is %d, want %d (a line was deleted, inserted or moved)", s.name, lineNo, e.Seq, want)
			}
			if e.Prev != prev {
				return fmt.Errorf("audit log %s line %d: does not link to the line before it (a line was deleted, inserted, moved or edited)", s.name, lineNo)
			}
			want, prev = e.Seq+1, e.Hash
			if rep.Entries == 0 {
				rep.FirstSeq = e.Seq
			}
			rep.Entries++
			rep.LastSeq = e.Seq
			if e.Event == EventRepaired {
				t, _ := time.Parse(time.RFC3339Nano, e.Time)
				rep.Repairs = append(rep.Repairs, Repair{Seq: e.Seq, Time: t, Detail: e.Detail})
			}
			return nil
		})
		if err != nil {
			return rep, err
		}
	}
	return rep, nil
}

type openSeg struct {
	name string
	n    uint64 // its number; the newest's is in its header
	f    *os.File
}

func closeAll(segs []openSeg) {
	for _, s := range segs {
		s.f.Close()
	}
}

// openSegments opens the kept segments of the log at path, oldest first,
// the newest last, and reads the newest's header. Every file is opened
// before any is read, so a writer starting a segment meanwhile cannot make
// the set inconsistent: if one did between the listing and the opening,
// it lists again.
func openSegments(path string) ([]openSeg, header, error) {
	for attempt := 0; ; attempt++ {
		segs, live, err := tryOpenSegments(path)
		if err == nil || attempt == 3 || !errors.Is(err, errRace) {
			if errors.Is(err, errRace) {
				err = nil // Verify says what is missing
			}
			return segs, live, err
		}
		closeAll(segs)
	}
}

var errRace = errors.New("the log changed while being opened")

func tryOpenSegments(path string) ([]openSeg, header, error) {
	live := header{Seg: 1}
	ns, err := segmentNumbers(path)
	if err != nil {
		return nil, live, err
	}
	var segs []openSeg
	for _, n := range ns {
		f, err := os.Open(segmentPath(path, n))
		if errors.Is(err, fs.ErrNotExist) {
			return segs, live, errRace
		}
		if err != nil {
			return segs, live, err
		}
		segs = append(segs, openSeg{segmentPath(path, n), n, f})
	}
	lf, err := os.Open(path)
	if err != nil {
		return segs, live, err
	}
	first, err := firstLine(lf)
	if err == nil && first != nil && first.Event == EventSegment {
		live, err = parseHeader(first.Detail)
	}
	if err != nil {
		lf.Close()
		return segs, live, fmt.Errorf("%s: %w", path, err)
	}
	// Keep the segments the newest one says are kept: not those dropped
	// (a writer deletes them just after), nor a link to the newest itself
	// (a writer stopped between keeping it and replacing it).
	var kept []openSeg
	lino := fileIno(lf)
	race := false
	for _, s := range segs {
		switch {
		case live.Drop != nil && s.n <= live.Drop.Seg, s.n >= live.Seg && fileIno(s.f) == lino:
			s.f.Close()
			continue
		case s.n >= live.Seg:
			race = true // started after the listing was read
		}
		kept = append(kept, s)
	}
	kept = append(kept, openSeg{path, live.Seg, lf})
	if len(kept) > 1 && kept[len(kept)-2].n != live.Seg-1 {
		race = true // the newest became an older one after the listing
	}
	if race {
		return kept, live, errRace
	}
	return kept, live, nil
}

func fileIno(f *os.File) uint64 {
	st, err := f.Stat()
	if err != nil {
		return 0
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

// scan calls fn with every line of f that parses, numbered from 1. strict
// makes a last line without a newline an error (Verify); otherwise it is
// taken for a line being written and ends the scan.
func scan(f io.Reader, path string, strict bool, fn func(lineNo int, e entry) error) error {
	return eachLine(f, path, strict, func(n int, line []byte) error {
		e, err := parseLine(line)
		if err != nil {
			return fmt.Errorf("audit log %s line %d: %v", path, n, err)
		}
		return fn(n, e)
	})
}

func eachLine(f io.Reader, path string, strict bool, fn func(lineNo int, line []byte) error) error {
	r := bufio.NewReaderSize(f, 64<<10)
	for n := 1; ; n++ {
		line, err := r.ReadSlice('\n')
		switch {
		case err == io.EOF && len(line) == 0:
			return nil
		case errors.Is(err, bufio.ErrBufferFull):
			return fmt.Errorf("audit log %s line %d: longer than %d bytes, not written by this package", path, n, maxLine)
		case err == io.EOF && !strict:
			return nil // a line being written
		case err == io.EOF:
			return fmt.Errorf("audit log %s line %d: incomplete (no newline), possibly cut short (the next writer repairs a torn last line)", path, n)
		case err != nil:
			return fmt.Errorf("read audit log %s: %w", path, err)
		}
		if err := fn(n, line[:len(line)-1]); err != nil {
			return err
		}
	}
}

// Read calls fn with every event of the log at path, in order, across its
// kept segments, for reports (`runner egress`, `runner audit`). Each line's
// own hash is checked; a line that fails it stops the read with an error
// naming it (Verify checks the chain as well).
func Read(path string, fn func(Event) error) error {
	return ReadEntries(path, func(e Entry) error { return fn(e.Event) })
}

// Entry is one line of the log as Read gives it, with its sequence number
// and the line as written.
type Entry struct {
	Event
	Seq  uint64
	Line []byte // valid only during the call
}

// ReadEntries is Read, giving each entry's sequence number and raw line
// too.
func ReadEntries(path string, fn func(Entry) error) error {
	segs, _, err := openSegments(path)
	if err != nil {
		return fmt.Errorf("read audit log: %w", err)
	}
	defer closeAll(segs)
	for _, s := range segs {
		err := eachLine(s.f, s.name, false, func(n int, line []byte) error {
			e, err := parseLine(line)
			if err != nil {
				return fmt.Errorf("audit log %s line %d: %v", s.name, n, err)
			}
			t, _ := time.Parse(time.RFC3339Nano, e.Time)
			return fn(Entry{Event: Event{Time: t, Event: e.Event, Actor: e.Actor, Target: e.Target, Detail: e.Detail}, Seq: e.Seq, Line: line})
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Lines calls fn with every line of the log at path as written, across its
// kept segments, without checking them: for printing a log that may be
// damaged (`runner audit`). A last line being written is left out.
func Lines(path string, fn func(line []byte) error) error {
	segs, _, err := openSegments(path)
	if err != nil {
		return fmt.Errorf("read audit log: %w", err)
	}
	defer closeAll(segs)
	for _, s := range segs {
		if err := eachLine(s.f, s.name, false, func(_ int, line []byte) error { return fn(line) }); err != nil {
			return err
		}
	}
	return nil
}
