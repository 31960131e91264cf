// Package transcript records what an agent's pane printed, on the host, in
// the run's private state directory, and reads it back.
//
// # Files
//
// One agent's transcript is a directory (private/transcripts/AGENT/, 0700,
// never mounted into a container) of numbered segments, 000001.log,
// 000002.log, ... (0600). The recorder appends to the newest; when it would
// grow past the segment cap it starts the next. Older segments are kept
// until all of them together would pass the total cap (DefaultMax, or
// RUNNER_TRANSCRIPT_MAX); only then is the oldest deleted, and the new
// segment's first record says what was dropped, so a gap is visible and
// `logs` says how much text is gone.
//
// # Format
//
// Each segment is JSON lines, one record per line, hash-chained as the
// audit log is (internal/chain): every record carries a sequence number one
// more than the record before it, that record's hash ("prev", across
// segments too) and its own ("hash"). A record of the pane's output:
//
//	{"seq":7,"t":"2025-06-01T12:00:00.123456789Z","b":"aGVsbG8NCg==","prev":"…","hash":"…"}
//
// t is when the recorder received the chunk (RFC 3339, UTC) and b the bytes
// themselves, base64: exactly what reached the recorder, escape sequences
// and partial UTF-8 included. A chunk never exceeds MaxChunk bytes. Other
// records have an "ev": "segment" begins every segment (with "seg", its
// number, and "drop", what was dropped so far at the cap), "stream" and
// "stream_end" say when the recorder began and stopped reading a container
// ("d": which one). Verify checks the whole chain; Read skips a line it
// cannot decode.
//
// # What a transcript proves
//
// What the recorder received from the agent's stream, and when. Not that
// the pane showed it: the stream's helper runs as the agent's uid, so the
// agent can write into it. The chain shows edits, deletions and reordering
// of recorded text by anyone who cannot rewrite every later record; cutting
// records off the end of the newest segment leaves a valid, shorter chain.
package transcript

import (
	"errors"
	"fmt"
	"github.com/runner-dev/runner/internal/bytesize"
	"os"
	"path/filepath"
	"time"
)

const (
	// DefaultMax is the disk one agent's transcript may use, all segments
	// together.
	DefaultMax = 64 << 20
	// MinMax is the smallest total cap accepted: four of the smallest
	// segments.
	MinMax = 4 * MinSegment
	// MinSegment and MaxSegment bound a segment's cap, which is a sixteenth
	// of the total cap within them.
	MinSegment = 4 << 10
	MaxSegment = 4 << 20
	// EnvMax names the environment variable that sets the total cap
	// ("64MiB", "512KiB", "1GB" or a number of bytes).
	EnvMax = "RUNNER_TRANSCRIPT_MAX"
	// MaxChunk bounds the bytes in one record, so lines stay short.
	MaxChunk = 32 << 10
)

// Record is one chunk of a pane's output and when it was recorded, or (with
// Dropped set and no Data) the notice that earlier output was dropped at
// the cap.
type Record struct {
	Time    time.Time
	Data    []byte
	Dropped *Drop
}

// Drop is what was dropped of a transcript at its cap, cumulatively: every
// segment up to Seg, whose last record was Seq with hash Last.
type Drop struct {
	Seg   uint64    `json:"seg"`
	Seq   uint64    `json:"seq"`
	Last  string    `json:"last"`
	Bytes int64     `json:"bytes"` // of pane output
	From  time.Time `json:"from"`  // when the first of it was recorded
	To    time.Time `json:"to"`    // and the last
}

// Dir is the directory holding agent's transcript in dir.
func Dir(dir, agent string) string { return filepath.Join(dir, agent) }

// SegmentPath is segment n of agent's transcript in dir.
func SegmentPath(dir, agent string, n uint64) string {
	return filepath.Join(Dir(dir, agent), fmt.Sprintf("%06d.log", n))
}

// Exists reports whether agent has a transcript in dir.
func Exists(dir, agent string) bool {
	fi, err := os.Stat(Dir(dir, agent))
	return err == nil && fi.IsDir()
}

// SegmentCap is the cap of each segment of a transcript capped at total.
func SegmentCap(total int64) int64 { return min(MaxSegment, max(MinSegment, total/16)) }

// ParseSize reads a cap written as in the config file: "10MiB", "512KiB",
// "1GB", "16384B" or "16384". It must be at least MinMax.
func ParseSize(s string) (int64, error) {
	n, err := bytesize.Parse(s, "64MiB")
	if err != nil {
		return 0, err
	}
	if n < MinMax {
		return 0, fmt.Errorf("%q is below the minimum transcript size of %d bytes", s, MinMax)
	}
	return n, nil
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

// ErrNoTranscript means the agent has no transcript in the directory.
var ErrNoTranscript = errors.New("no transcript")
