// Package audit is the per-run record of every security decision
// (invariant 10): an append-only file of JSON lines, each carrying the hash of
// the line before it (internal/chain), so that editing, deleting or reordering a line breaks
// the chain and Verify reports where.
//
// The chain proves integrity, not completeness at the end: cutting lines off
// the tail leaves a valid, shorter chain. Whoever needs that guarantee keeps
// the last hash somewhere else and compares.
//
// The log is bounded: it is a series of segments under a total cap, the
// oldest dropped first, with the chain running through them (segment.go).
// A last line a write left incomplete (a full disk, a kill) is cut by the
// next writer, which records the cut in the chain (repair.go); damage
// anywhere else is refused.
package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
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
	if len(s) <= max && printableASCII(s) {
		return s // the usual case, on the relay's hot path
	}
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

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
