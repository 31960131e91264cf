package transcript

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"time"

	"github.com/runner-dev/runner/internal/chain"
)

// Verified is what Verify found in a transcript whose chain is intact.
type Verified struct {
	Segments int    // on disk and checked
	Records  uint64 // checked
	Bytes    int64  // of pane output in them
	First    uint64 // the first segment checked
	Last     uint64 // the newest
	Dropped  *Drop  // what the recorder says it dropped at the cap, if anything
	Streams  int    // streams the recorder started
	Partial  bool   // the newest segment ends in a line cut short (being written, or a recorder killed mid-write)
	Newest   time.Time
}

// Verify checks agent's transcript in dir: every record's own hash,
// canonical form and kind, its link to the record before it and its
// sequence number, across segments; that segments follow each other with
// none missing; that every segment begins with its header; and that the
// oldest segment on disk either starts the chain or follows what the
// newest header says was dropped at the cap. The error names the first
// broken segment and line.
//
// A transcript being written can be verified: a segment the recorder drops
// meanwhile makes Verify start again (up to ten times), and a newest segment
// that is empty or ends mid-line is only reported (Partial).
func Verify(dir, agent string) (Verified, error) {
	for attempt := 0; ; attempt++ {
		before := onDisk(dir, agent)
		v, err := verify(dir, agent)
		if err == nil || attempt == 9 {
			return v, err
		}
		// A break seen while the recorder rotated (the newest header not
		// yet written when the oldest went) is looked at again; one that
		// stays with the same segments on disk is real.
		if !errors.Is(err, fs.ErrNotExist) && slices.Equal(before, onDisk(dir, agent)) {
			return v, err
		}
	}
}

// onDisk is what changes while a transcript is written: its segment
// numbers and the newest one's size.
func onDisk(dir, agent string) []uint64 {
	ns, _ := segments(Dir(dir, agent))
	if len(ns) > 0 {
		if fi, err := os.Stat(SegmentPath(dir, agent, ns[len(ns)-1])); err == nil {
			ns = append(ns, uint64(fi.Size()))
		}
	}
	return ns
}

func verify(dir, agent string) (Verified, error) {
	var v Verified
	adir := Dir(dir, agent)
	ns, err := segments(adir)
	if err != nil || len(ns) == 0 {
		return v, fmt.Errorf("%w for %s in %s", ErrNoTranscript, agent, dir)
	}
	v.Dropped = newestDrop(adir, ns)
	seq, prev, want := uint64(0), chain.Genesis, uint64(1)
	if d := v.Dropped; d != nil {
		seq, prev, want = d.Seq, d.Last, d.Seg+1
		for len(ns) > 0 && ns[0] <= d.Seg {
			ns = ns[1:] // recorded as dropped, not yet deleted
		}
	}
	v.First, v.Last = want, ns[len(ns)-1]
	var lastDrop *Drop
	for i, n := range ns {
		path := SegmentPath(dir, agent, n)
		if n != want {
			if want == v.First && v.Dropped == nil {
				return v, fmt.Errorf("%s: the transcript starts at segment %d: segments %d to %d are missing and were not dropped by the recorder", path, n, want, n-1)
			}
			if want == v.First {
				return v, fmt.Errorf("%s: the transcript starts at segment %d, but the recorder dropped only up to segment %d: segments %d to %d are missing", path, n, want-1, want, n-1)
			}
			return v, fmt.Errorf("%s: segment %d follows segment %d: segments %d to %d are missing", path, n, want-1, want, n-1)
		}
		newest := i == len(ns)-1
		err := verifySegment(path, n, newest, &seq, &prev, &lastDrop, &v)
		if err != nil {
			return v, err
		}
		v.Segments++
		want = n + 1
	}
	return v, nil
}

func verifySegment(path string, n uint64, newest bool, seq *uint64, prev *string, lastDrop **Drop, v *Verified) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("verify transcript: %w", err) // fs.ErrNotExist: dropped meanwhile
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, maxLine)
	for lineNo := 1; ; lineNo++ {
		line, err := r.ReadSlice('\n')
		if err == io.EOF && len(line) == 0 {
			if lineNo == 1 && !newest {
				return fmt.Errorf("%s: empty segment", path)
			}
			v.Partial = v.Partial || lineNo == 1 // being started
			return nil
		}
		where := fmt.Sprintf("%s line %d", path, lineNo)
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			return fmt.Errorf("%s: longer than %d bytes, not written by the recorder", where, maxLine)
		case err == io.EOF && newest:
			v.Partial = true // cut short: the end of the chain is not provable anyway
			return nil
		case err == io.EOF:
			return fmt.Errorf("%s: incomplete (no newline): the segment was cut short", where)
		case err != nil:
			return fmt.Errorf("verify transcript: %w", err)
		}
		e, err := parse(line[:len(line)-1])
		if err != nil {
			return fmt.Errorf("%s: %v", where, err)
		}
		if e.Seq != *seq+1 {
			return fmt.Errorf("%s: sequence number is %d, want %d (a record was deleted, inserted or moved)", where, e.Seq, *seq+1)
		}
		if e.Prev != *prev {
			return fmt.Errorf("%s: does not link to the record before it (a record or segment was deleted, inserted, moved or edited)", where)
		}
		if (lineNo == 1) != (e.Ev == evSegment) || (lineNo == 1 && e.Seg != n) {
			return fmt.Errorf("%s: a segment header must be the first line of its segment and name it", where)
		}
		switch e.Ev {
		case evSegment:
			// What was dropped only grows.
			if d := *lastDrop; d != nil && (e.Drop == nil || e.Drop.Seg < d.Seg || e.Drop.Bytes < d.Bytes) {
				return fmt.Errorf("%s: says less was dropped than an earlier segment did", where)
			}
			if e.Drop != nil && e.Drop.Seg >= n {
				return fmt.Errorf("%s: says its own segment was dropped", where)
			}
			*lastDrop = e.Drop
		case evStream:
			v.Streams++
		case "":
			v.Bytes += int64(len(e.B))
		}
		*seq, *prev = e.Seq, e.Hash
		v.Records++
		v.Newest = e.T
	}
}
