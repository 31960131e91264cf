// Package transcript records what an agent's pane printed, on the host, in
// the run's private state directory, and reads it back.
//
// # Files
//
// One agent's transcript is two files in a directory (private/transcripts/
// of the run): AGENT.log, written now, and AGENT.log.1, the one before it.
// When AGENT.log would grow past half the cap, it is renamed to AGENT.log.1
// (replacing the older one) and a new AGENT.log begins, so the two together
// never hold more than the cap (DefaultMax, or RUNNER_TRANSCRIPT_MAX) and
// the newest output is always kept. Files are 0600 in a 0700 directory that
// is never mounted into a container.
//
// # Format
//
// Each file is JSON lines, one per chunk of output, in the order the pane
// printed it:
//
//	{"t":"2025-06-01T12:00:00.123456789Z","b":"aGVsbG8NCg=="}
//
// t is when the recorder received the chunk (RFC 3339 with nanoseconds,
// UTC) and b the bytes themselves, base64 (standard alphabet, padded):
// exactly what the program wrote to its terminal, escape sequences and
// partial UTF-8 included. A chunk never exceeds MaxChunk bytes. A reader
// skips a line it cannot decode (a recorder killed mid-write leaves at most
// one, at the end of a file; the next writer starts on a fresh line).
package transcript

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"time"
)

const (
	// DefaultMax is the disk an agent's transcript may use: two files of
	// half of it each.
	DefaultMax = 10 << 20
	// MinMax is the smallest cap accepted.
	MinMax = 4 << 10
	// EnvMax names the environment variable that sets the cap ("10MiB",
	// "512KiB", "1GB" or a number of bytes).
	EnvMax = "RUNNER_TRANSCRIPT_MAX"
	// MaxChunk bounds the bytes in one record, so lines stay short.
	MaxChunk = 32 << 10
)

// Record is one chunk of a pane's output and when it was recorded.
type Record struct {
	Time time.Time
	Data []byte
}

// Path is agent's current transcript file in dir; the previous one is
// Path + ".1".
func Path(dir, agent string) string { return filepath.Join(dir, agent+".log") }

// Previous is the file the current one was rotated into.
func Previous(dir, agent string) string { return Path(dir, agent) + ".1" }

// Encode returns r as one line of the file format, newline included.
func Encode(r Record) []byte {
	ts := r.Time.UTC().Format(time.RFC3339Nano)
	out := make([]byte, 0, len(`{"t":"","b":""}`)+len(ts)+base64.StdEncoding.EncodedLen(len(r.Data))+1)
	out = append(out, `{"t":"`...)
	out = append(out, ts...)
	out = append(out, `","b":"`...)
	out = base64.StdEncoding.AppendEncode(out, r.Data)
	return append(out, "\"}\n"...)
}

// Decode parses one line of the file format (with or without its newline).
func Decode(line []byte) (Record, error) {
	var v struct {
		T *string `json:"t"`
		B *[]byte `json:"b"` // encoding/json reads base64 into []byte
	}
	if err := json.Unmarshal(line, &v); err != nil {
		return Record{}, fmt.Errorf("transcript record: %w", err)
	}
	if v.T == nil || v.B == nil {
		return Record{}, errors.New(`transcript record: needs "t" and "b"`)
	}
	t, err := time.Parse(time.RFC3339Nano, *v.T)
	if err != nil {
		return Record{}, fmt.Errorf("transcript record: %w", err)
	}
	return Record{Time: t, Data: *v.B}, nil
}

var sizeSyntax = regexp.MustCompile(`^([0-9]+) ?([A-Za-z]*)$`)

var sizeUnits = map[string]int64{
	"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30,
	"KB": 1000, "MB": 1000 * 1000, "GB": 1000 * 1000 * 1000,
}

// ParseSize reads a cap written as in the config file: "10MiB", "512KiB",
// "1GB", "4096B" or "4096". It must be at least MinMax.
func ParseSize(s string) (int64, error) {
	m := sizeSyntax.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q is not a size: use a whole number and a unit (B, KiB, MiB, GiB, KB, MB, GB), e.g. \"10MiB\"", s)
	}
	mult, ok := sizeUnits[m[2]]
	if !ok {
		return 0, fmt.Errorf("unknown unit %q in %q: use B, KiB, MiB, GiB, KB, MB or GB", m[2], s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	if n*mult < MinMax {
		return 0, fmt.Errorf("%q is below the minimum transcript size of %d bytes", s, MinMax)
	}
	return n * mult, nil
}

// MaxFromEnv is the cap EnvMax sets, or DefaultMax when it is unset.
func MaxFromEnv() (int64, error) {
	v := os.Getenv(EnvMax)
	if v == "" {
		return DefaultMax, nil
	}
	n, err := ParseSize(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", EnvMax, err)
	}
	return n, nil
}

// Writer appends records to one agent's transcript, rotating it so that it
// stays within its cap. It is safe for concurrent use (an agent's old and
// new container may both be streaming for a moment).
type Writer struct {
	mu    sync.Mutex
	path  string
	half  int64 // the cap of each of the two files
	chunk int   // the most data bytes in one record
	f     *os.File
	size  int64
}

// Open opens agent's transcript in dir for appending, creating the
// directory (0700) and file (0600) if needed. max is the cap for both
// files together (0: DefaultMax).
func Open(dir, agent string, max int64) (*Writer, error) {
	if max == 0 {
		max = DefaultMax
	}
	if max < MinMax {
		return nil, fmt.Errorf("transcript cap %d is below the minimum of %d bytes", max, MinMax)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	w := &Writer{path: Path(dir, agent), half: max / 2}
	// A record of n data bytes takes at most 4*ceil(n/3) + 64 bytes.
	w.chunk = min(MaxChunk, int((w.half-64)/4*3))
	if err := w.open(os.O_APPEND); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *Writer) open(flag int) error {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|flag, 0o600)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	w.f, w.size = f, fi.Size()
	if w.size > 0 && !endsInNewline(w.path, w.size) {
		// A writer died mid-line: start on a line of our own.
		n, err := f.Write([]byte("\n"))
		w.size += int64(n)
		if err != nil {
			return err
		}
	}
	return nil
}

func endsInNewline(path string, size int64) bool {
	f, err := os.Open(path)
	if err != nil {
		return true
	}
	defer f.Close()
	b := make([]byte, 1)
	_, err = f.ReadAt(b, size-1)
	return err != nil || b[0] == '\n'
}

// Modified is when the transcript was last written to, zero if never.
func (w *Writer) Modified() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range []string{w.path, w.path + ".1"} {
		if fi, err := os.Stat(p); err == nil && fi.Size() > 0 {
			return fi.ModTime()
		}
	}
	return time.Time{}
}

// Write records p as printed at time t, in as many records as it takes.
func (w *Writer) Write(t time.Time, p []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return errors.New("transcript: writer closed")
	}
	for len(p) > 0 {
		n := min(len(p), w.chunk)
		rec := Encode(Record{Time: t, Data: p[:n]})
		if w.size > 0 && w.size+int64(len(rec)) > w.half {
			if err := w.rotate(); err != nil {
				return err
			}
		}
		m, err := w.f.Write(rec)
		w.size += int64(m)
		if err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// rotate makes the current file the previous one and starts a new one.
func (w *Writer) rotate() error {
	if err := w.f.Close(); err != nil {
		return err
	}
	w.f = nil
	if err := os.Rename(w.path, w.path+".1"); err != nil {
		return err
	}
	return w.open(os.O_TRUNC)
}

// Close closes the current file.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

var _ io.Closer = (*Writer)(nil)
