package audit

import (
	"bytes"
	"fmt"
	"github.com/runner-dev/runner/internal/bytesize"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// # Segments
//
// The log is bounded the way transcripts are: the newest segment is the file
// at the log's path (private/audit.log); when an append would grow it past
// the segment cap, the writer starts a new one and the old file becomes
// path.000001, path.000002, ... (its number). Every segment but the first
// begins with an EventSegment entry, chained to the last line of the one
// before, saying its number, the total cap, and what has been dropped so
// far; older segments are deleted only when all of them together would
// pass the total cap. Verify checks the kept chain and that its first line
// links to the last dropped one, so deleting segments by hand shows.

const (
	// DefaultMax is the disk one run's audit log may use, all segments
	// together: some 200 000 entries.
	DefaultMax = 64 << 20
	// MinSegment and MaxSegment bound a segment's cap, which is a sixteenth
	// of the total cap within them.
	MinSegment = 64 << 10
	MaxSegment = 4 << 20
	// MinMax is the smallest total cap EnvMax accepts.
	MinMax = 4 * MinSegment
	// EnvMax names the environment variable that sets the total cap
	// ("64MiB", "1GiB" or a number of bytes) for the writers that see it;
	// each new segment records it, and writers without it follow that.
	EnvMax = "RUNNER_AUDIT_MAX"
	// EventSegment is the first entry of every segment after the first.
	EventSegment = "audit_segment"
)

// SegmentCap is the cap of each segment of a log capped at total.
func SegmentCap(total int64) int64 { return min(MaxSegment, max(MinSegment, total/16)) }

// Drop is what was dropped of a log at its cap, cumulatively: every
// segment up to Seg, whose last entry was Seq with hash Hash.
type Drop struct {
	Seg  uint64
	Seq  uint64
	Hash string
}

// header is what a segment's first entry says.
type header struct {
	Seg  uint64
	Max  int64
	Drop *Drop
}

func (h header) detail() string {
	s := fmt.Sprintf("seg=%d max=%d", h.Seg, h.Max)
	if h.Drop != nil {
		s += fmt.Sprintf(" dropped_seg=%d dropped_seq=%d dropped_hash=%s", h.Drop.Seg, h.Drop.Seq, h.Drop.Hash)
	}
	return s
}

func parseHeader(detail string) (header, error) {
	var h header
	var d Drop
	for _, f := range strings.Fields(detail) {
		k, v, _ := strings.Cut(f, "=")
		var err error
		switch k {
		case "seg":
			h.Seg, err = strconv.ParseUint(v, 10, 64)
		case "max":
			h.Max, err = strconv.ParseInt(v, 10, 64)
		case "dropped_seg":
			d.Seg, err = strconv.ParseUint(v, 10, 64)
		case "dropped_seq":
			d.Seq, err = strconv.ParseUint(v, 10, 64)
		case "dropped_hash":
			d.Hash = v
		}
		if err != nil {
			return h, fmt.Errorf("segment header %q: %v", detail, err)
		}
	}
	if h.Seg < 2 || h.Max < 0 {
		return h, fmt.Errorf("segment header %q: no segment number", detail)
	}
	if d.Seg != 0 {
		if d.Seg >= h.Seg || len(d.Hash) != 64 {
			return h, fmt.Errorf("segment header %q: malformed drop", detail)
		}
		h.Drop = &d
	}
	return h, nil
}

// segmentPath is where segment n lives once it is no longer the newest.
func segmentPath(path string, n uint64) string { return fmt.Sprintf("%s.%06d", path, n) }

var segmentSuffix = regexp.MustCompile(`^\.[0-9]{6,}$`)

// segmentNumbers lists the log's older segments, oldest first.
func segmentNumbers(path string) ([]uint64, error) {
	ents, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	base := filepath.Base(path)
	var ns []uint64
	for _, e := range ents {
		suf, ok := strings.CutPrefix(e.Name(), base)
		if !ok || !segmentSuffix.MatchString(suf) || !e.Type().IsRegular() {
			continue
		}
		if n, err := strconv.ParseUint(suf[1:], 10, 64); err == nil && n > 0 {
			ns = append(ns, n)
		}
	}
	slices.Sort(ns)
	return ns, nil
}

// SegmentFiles are the files of the log at path, oldest first, the newest
// (path itself) last: for moving a log (an archive) as a whole.
func SegmentFiles(path string) ([]string, error) {
	ns, err := segmentNumbers(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range ns {
		out = append(out, segmentPath(path, n))
	}
	return append(out, path), nil
}

// firstLine parses f's first line; nil if it has none complete.
func firstLine(f *os.File) (*entry, error) {
	b := make([]byte, maxLine+1)
	n, err := f.ReadAt(b, 0)
	if n == 0 && err != nil {
		return nil, err
	}
	i := bytes.IndexByte(b[:n], '\n')
	if i < 0 {
		return nil, nil
	}
	e, err := parseLine(b[:i])
	if err != nil {
		return nil, fmt.Errorf("first line: %v", err)
	}
	return &e, nil
}

// lastLine parses the last line of the file at path.
func lastLine(path string) (entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return entry{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return entry{}, err
	}
	n := min(st.Size(), maxLine+1)
	b := make([]byte, n)
	if _, err := f.ReadAt(b, st.Size()-n); err != nil {
		return entry{}, err
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	return parseLine(b)
}

type segFile struct {
	n    uint64
	size int64
}

// rotate writes events into a new segment: it decides which old segments
// the cap drops, writes the new segment (its header, then events) to a
// temporary file and syncs it, keeps the current newest under its number
// (a hard link, so path never goes missing), puts the new one at path, and
// only then deletes the dropped segments. A crash anywhere leaves either
// the old newest segment at path or the complete new one. Call with the
// flock held.
func (l *Log) rotate(events []Event, now time.Time) error {
	ns, err := segmentNumbers(l.path)
	if err != nil {
		return err
	}
	drop := l.hdr.Drop
	var kept []segFile
	var total int64
	var stale []uint64
	for _, n := range ns {
		if drop != nil && n <= drop.Seg || n >= l.hdr.Seg {
			stale = append(stale, n) // dropped before, or a link a crash left
			continue
		}
		st, err := os.Lstat(segmentPath(l.path, n))
		if err != nil {
			return err
		}
		kept = append(kept, segFile{n, st.Size()})
		total += st.Size()
	}
	kept = append(kept, segFile{l.hdr.Seg, l.size})
	total += l.size
	var gone []uint64
	for len(kept) > 1 && total+l.segMax > l.max {
		old := kept[0]
		last, err := lastLine(segmentPath(l.path, old.n))
		if err != nil {
			return fmt.Errorf("segment %d: %w", old.n, err)
		}
		drop = &Drop{Seg: old.n, Seq: last.Seq, Hash: last.Hash}
		gone = append(gone, old.n)
		total -= old.size
		kept = kept[1:]
	}
	h := header{Seg: l.hdr.Seg + 1, Max: l.max, Drop: drop}
	hb, seq, prev, err := encode([]Event{{Time: now, Event: EventSegment, Actor: "runner", Detail: h.detail()}}, now, l.seq, l.prev)
	if err != nil {
		return err
	}
	buf, seq, prev, err := encode(events, now, seq, prev)
	if err != nil {
		return err
	}
	for _, n := range stale {
		if n < l.hdr.Seg {
			continue
		}
		// A link to the newest segment a crash left is made again below;
		// anything else there is not ours to delete.
		p := segmentPath(l.path, n)
		st, err := os.Lstat(p)
		if err != nil || st.Sys().(*syscall.Stat_t).Ino != l.ino {
			return fmt.Errorf("%s is in the way of the next segment: move it aside", p)
		}
		os.Remove(p)
	}
	tmp := fmt.Sprintf("%s.new-%d", l.path, os.Getpid())
	os.Remove(tmp)
	nf, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL|os.O_APPEND|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	content := append(hb, buf...)
	if _, err := nf.Write(content); err == nil {
		err = nf.Sync()
	}
	if err == nil {
		err = os.Link(l.path, segmentPath(l.path, l.hdr.Seg))
	}
	if err == nil {
		err = os.Rename(tmp, l.path)
	}
	if err != nil {
		nf.Close()
		os.Remove(tmp)
		return err
	}
	syncDir(filepath.Dir(l.path))
	for _, n := range append(stale, gone...) {
		if n < l.hdr.Seg {
			os.Remove(segmentPath(l.path, n))
		}
	}
	l.retired = l.f
	l.f, l.ino = nf, inode(nf)
	l.hdr, l.hdrIno = h, l.ino
	l.size, l.seq, l.prev = int64(len(content)), seq, prev
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// ParseSize reads a cap as EnvMax gives it: "64MiB", "512KiB", "1GB",
// "16384B" or "16384". It must be at least MinMax.
func ParseSize(s string) (int64, error) {
	n, err := bytesize.Parse(s, "64MiB")
	if err != nil {
		return 0, err
	}
	if n < MinMax {
		return 0, fmt.Errorf("%q is below the audit log's minimum of %d bytes", s, MinMax)
	}
	return n, nil
}
