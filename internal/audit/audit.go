// Package audit is the per-run record of every security decision
// (invariant 10): an append-only file of JSON lines, each carrying the hash of
// the line before it (internal/chain), so that editing, deleting or reordering a line breaks
// the chain and Verify reports where.
//
// The chain proves integrity, not completeness at the end: cutting lines off
// the tail leaves a valid, shorter chain. Whoever needs that guarantee keeps
// the last hash somewhere else and compares.
package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/runner-dev/runner/internal/chain"
)

// Event is one decision to record. The log assigns the sequence number and
// the chain hashes; Time defaults to now.
type Event struct {
	Time   time.Time
	Event  string // what happened: connect, auth_failed, deny, send, deliver, ...
	Actor  string // who did it (an authenticated identity, or empty)
	Target string // whom it concerned
	Detail string // free text; never a secret or a message body
}

// Field bounds keep every line short, so Open can find the last one by
// reading only the tail of the file.
const (
	maxActor  = 128
	maxDetail = 1024
	maxLine   = 16 << 10
)

// genesis is the "prev" of the first line.
const genesis = chain.Genesis

var eventName = regexp.MustCompile(`^[a-z][a-z_]{0,31}$`)

// entry is one line of the file. Field order is the canonical order: the
// hash covers the line encoded exactly like this with Hash empty.
type entry struct {
	Seq    uint64 `json:"seq"`
	Time   string `json:"time"`
	Event  string `json:"event"`
	Actor  string `json:"actor"`
	Target string `json:"target"`
	Detail string `json:"detail"`
	Prev   string `json:"prev"`
	Hash   string `json:"hash,omitempty"`
}

// seal sets e.Hash and returns the line's bytes (without the newline).
func (e *entry) seal() ([]byte, error) {
	e.Hash = ""
	body, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	line, hash := chain.Seal(body)
	e.Hash = hash
	return line, nil
}

// Log appends events to one audit file. It is safe for concurrent use, and
// several processes (the relay, apply, destroy, attach) may each have the same
// file open: every append takes an exclusive flock and first picks up lines
// the others added, so they all extend one chain.
type Log struct {
	mu     sync.Mutex
	path   string
	f      *os.File
	size   int64 // file size after our last look at the tail
	seq    uint64
	prev   string
	broken error // set when a write may have left a partial line
}

// Open opens (or creates, mode 0600) the audit log at path and continues its
// chain from the last line. It refuses a file others can read or write, and a
// file whose last line is damaged.
func Open(path string) (*Log, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	l := &Log{path: path, f: f, size: -1}
	err = l.locked(func() error {
		st, err := f.Stat()
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
		f.Close()
		return nil, err
	}
	return l, nil
}

// locked runs fn holding the file's exclusive flock.
func (l *Log) locked(fn func() error) error {
	if err := syscall.Flock(int(l.f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock audit log %s: %w", l.path, err)
	}
	defer syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	return fn()
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
		return fmt.Errorf("audit log %s: last line is damaged (%v): check it with audit.Verify, then move the file aside to start a new chain", l.path, err)
	}
	l.size, l.seq, l.prev = size, e.Seq, e.Hash
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
	seq, prev := l.seq, l.prev
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
			return fmt.Errorf("audit: encode event: %w", err)
		}
		buf = append(append(buf, line...), '\n')
		seq, prev = ent.Seq, ent.Hash
	}
	// One write call, so the batch is never interleaved with another writer's
	// lines (they hold the flock too, and O_APPEND puts it at the end).
	if _, err := l.f.Write(buf); err != nil {
		l.broken = fmt.Errorf("audit log %s: write failed (%v); the file may end in a partial line: check it with audit.Verify", l.path, err)
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

// Close closes the file. Appending after Close fails.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.broken == nil {
		l.broken = fmt.Errorf("audit log %s is closed", l.path)
	}
	return l.f.Close()
}

// parseLine decodes one line and checks that it is exactly the canonical
// encoding of its fields and that its hash matches them.
func parseLine(b []byte) (entry, error) {
	var e entry
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return e, fmt.Errorf("not a valid audit entry: %v", err)
	}
	if e.Seq == 0 || !eventName.MatchString(e.Event) || len(e.Prev) != 64 || len(e.Hash) != 64 {
		return e, errors.New("not a valid audit entry: missing or malformed seq, event, prev or hash")
	}
	if _, err := time.Parse(time.RFC3339Nano, e.Time); err != nil {
		return e, fmt.Errorf("not a valid audit entry: time: %v", err)
	}
	claimed := e.Hash
	again, err := e.seal()
	if err != nil {
		return e, err
	}
	if e.Hash != claimed {
		return e, errors.New("hash does not match the line's content (the line was edited)")
	}
	if !bytes.Equal(again, b) {
		return e, errors.New("line is not in canonical form (the line was edited)")
	}
	return e, nil
}

// clean makes s safe to print and bounded: invalid UTF-8 is replaced, control
// and format characters (ESC, bidi overrides, ...) are escaped so that reading
// the log in a terminal cannot be abused, and the result is cut to max bytes.
func clean(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			fmt.Fprintf(&b, `\u%04x`, r)
		} else {
			b.WriteRune(r)
		}
		if b.Len() > max {
			break
		}
	}
	out := b.String()
	if len(out) <= max {
		return out
	}
	out = out[:max]
	for !utf8.ValidString(out) {
		out = out[:len(out)-1]
	}
	return out
}
