package audit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Report is what VerifyReport found.
type Report struct {
	Entries  int    // lines that verified
	FirstSeq uint64 // the first verified line's sequence number
	LastSeq  uint64
	Repairs  []Repair // torn tails cut by a writer, as the chain records them
}

// Repair is one EventRepaired entry.
type Repair struct {
	Seq    uint64
	Time   time.Time
	Detail string
}

// Verify reads the log at path and checks every line: canonical encoding, its
// own hash, the link to the line before and consecutive sequence numbers. It
// returns how many lines verified, and for the first bad line an error naming
// it.
func Verify(path string) (int, error) {
	r, err := VerifyReport(path)
	return r.Entries, err
}

// VerifyReport is Verify, also saying which repairs the chain records.
func VerifyReport(path string) (Report, error) {
	var rep Report
	f, err := os.Open(path)
	if err != nil {
		return rep, fmt.Errorf("verify audit log: %w", err)
	}
	defer f.Close()
	prev := genesis
	err = scan(f, path, true, func(lineNo int, e entry) error {
		if e.Seq != uint64(lineNo) {
			return fmt.Errorf("audit log %s line %d: sequence number is %d, want %d (a line was deleted, inserted or moved)", path, lineNo, e.Seq, lineNo)
		}
		if e.Prev != prev {
			return fmt.Errorf("audit log %s line %d: does not link to the line before it (a line was deleted, inserted, moved or edited)", path, lineNo)
		}
		prev = e.Hash
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
	return rep, err
}

// scan calls fn with every line of f that parses, numbered from 1. strict
// makes a last line without a newline an error (Verify); otherwise it is
// taken for a line being written and ends the scan.
func scan(f io.Reader, path string, strict bool, fn func(lineNo int, e entry) error) error {
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
		e, err := parseLine(line[:len(line)-1])
		if err != nil {
			return fmt.Errorf("audit log %s line %d: %v", path, n, err)
		}
		if err := fn(n, e); err != nil {
			return err
		}
	}
}

// Read calls fn with every event of the log at path, in order, for
// reports (`runner egress`). Each line's own hash is checked; a line that
// fails it stops the read with an error naming it (Verify checks the
// chain as well).
func Read(path string, fn func(Event) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read audit log: %w", err)
	}
	defer f.Close()
	return scan(f, path, false, func(_ int, e entry) error {
		t, _ := time.Parse(time.RFC3339Nano, e.Time)
		return fn(Event{Time: t, Event: e.Event, Actor: e.Actor, Target: e.Target, Detail: e.Detail})
	})
}
