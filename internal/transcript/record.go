package transcript

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/runner-dev/runner/internal/chain"
)

// Events of records that are not the pane's output.
const (
	evSegment   = "segment"
	evStream    = "stream"
	evStreamEnd = "stream_end"
)

// maxDetail bounds an event's detail, which only the recorder writes.
const maxDetail = 256

var detailSyntax = regexp.MustCompile(`^[ -~]*$`)

// entry is one line of a segment. Field order is the canonical order: the
// hash covers the line encoded exactly like this with Hash empty.
type entry struct {
	Seq  uint64    `json:"seq"`
	T    time.Time `json:"t"`
	Ev   string    `json:"ev,omitempty"`
	Seg  uint64    `json:"seg,omitempty"`
	Drop *Drop     `json:"drop,omitempty"`
	D    string    `json:"d,omitempty"`
	B    []byte    `json:"b,omitempty"`
	Prev string    `json:"prev"`
	Hash string    `json:"hash,omitempty"`
}

// seal sets e.Hash and returns the line, newline included.
func (e *entry) seal() ([]byte, error) {
	e.Hash = ""
	e.T = e.T.UTC()
	body, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("transcript record: %w", err)
	}
	line, hash := chain.Seal(body)
	e.Hash = hash
	return append(line, '\n'), nil
}

// decode reads a line (without its newline) leniently, for Read: its
// fields, not its hash.
func decode(line []byte) (entry, error) {
	var e entry
	if err := json.Unmarshal(line, &e); err != nil {
		return e, fmt.Errorf("transcript record: %w", err)
	}
	if e.Seq == 0 || e.T.IsZero() {
		return e, errors.New(`transcript record: needs "seq" and "t"`)
	}
	return e, nil
}

// parse reads a line (without its newline) strictly, for Verify: known
// fields only, a well-formed record of its kind, its hash matching and the
// line exactly the canonical encoding of its fields.
func parse(line []byte) (entry, error) {
	var e entry
	body, hash, err := chain.Unseal(line)
	if err != nil {
		return e, err
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return e, fmt.Errorf("not a transcript record: %v", err)
	}
	if e.Seq == 0 || e.T.IsZero() || len(e.Prev) != 64 || len(e.Hash) != 64 {
		return e, errors.New("not a transcript record: missing or malformed seq, t, prev or hash")
	}
	switch e.Ev {
	case "":
		if len(e.B) == 0 || e.Seg != 0 || e.Drop != nil || e.D != "" {
			return e, errors.New("not a transcript record: output needs b and nothing else")
		}
	case evSegment:
		if e.Seg == 0 || len(e.B) != 0 || e.D != "" {
			return e, errors.New("not a transcript record: a segment header needs seg and no b or d")
		}
	case evStream, evStreamEnd:
		if e.Seg != 0 || e.Drop != nil || len(e.B) != 0 || !detailSyntax.MatchString(e.D) || len(e.D) > maxDetail {
			return e, errors.New("not a transcript record: a stream event has only a printable d")
		}
	default:
		return e, fmt.Errorf("not a transcript record: unknown event %q", e.Ev)
	}
	// The hash covers body; body must be exactly what these fields encode
	// to, so no two lines mean the same record.
	e.Hash, e.T = "", e.T.UTC()
	again, err := json.Marshal(e)
	if err != nil || !bytes.Equal(again, body) {
		return e, errors.New("line is not in canonical form (the line was edited)")
	}
	e.Hash = hash
	return e, nil
}
