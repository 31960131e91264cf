package transcript

import (
	"bytes"
	"maps"
	"slices"
	"sync"
)

// Redactor replaces secret values in pane output with "[secret NAME]"
// before it is recorded, also when a value arrives split across chunks
// (it holds back the end of a chunk for as long as it could be the start
// of a value) or across rows of a terminal view (CR and LF inside a value
// are skipped). Safe for concurrent use; Set replaces the values (a
// rotation).
type Redactor struct {
	mu     sync.Mutex
	values []redactValue // longest first, so a value inside another is not cut
	held   []byte
}

type redactValue struct {
	v, with []byte
}

// MinRedact is the shortest value redacted: a shorter one would garble
// ordinary output and is no secret worth the name.
const MinRedact = 4

// maxHeld bounds what a Redactor holds back waiting for a value's end.
const maxHeld = 64 << 10

// NewRedactor redacts values (value -> secret name).
func NewRedactor(values map[string]string) *Redactor {
	r := &Redactor{}
	r.Set(values)
	return r
}

// Set replaces the values redacted from now on.
func (r *Redactor) Set(values map[string]string) {
	var vs []redactValue
	for _, v := range slices.Sorted(maps.Keys(values)) {
		if len(v) < MinRedact {
			continue
		}
		with := []byte("[secret " + values[v] + "]")
		vs = append(vs, redactValue{[]byte(v), with})
		// A terminal turns a value's line feeds into CR LF (onlcr).
		if crlf := bytes.ReplaceAll([]byte(v), []byte("\n"), []byte("\r\n")); !bytes.Equal(crlf, []byte(v)) {
			vs = append(vs, redactValue{crlf, with})
		}
	}
	slices.SortStableFunc(vs, func(a, b redactValue) int { return len(b.v) - len(a.v) })
	r.mu.Lock()
	defer r.mu.Unlock()
	r.values = vs
}

// Push takes the next chunk and returns what may be recorded now.
func (r *Redactor) Push(p []byte) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	buf := append(r.held, p...)
	r.held = nil
	if len(r.values) == 0 {
		return buf
	}
	out, keep := r.redact(buf)
	if len(keep) > maxHeld { // a prefix followed by endless line breaks
		return append(out, keep...)
	}
	r.held = keep
	return out
}

// Flush returns what is held back (the stream ended).
func (r *Redactor) Flush() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.held
	r.held = nil
	return out
}

// lineBreak are bytes a terminal view puts inside a printed value: a
// history dump or a wrapped screen line ends a row in the middle of it.
func lineBreak(c byte) bool { return c == '\r' || c == '\n' }

// match reports how many bytes of b, from its start, spell v with line
// breaks allowed between v's bytes; partial says b ended first (after a
// prefix of v).
func match(b, v []byte) (n int, partial bool) {
	j := 0
	for i := 0; i < len(b); i++ {
		if j == len(v) {
			return i, false
		}
		switch {
		case b[i] == v[j]:
			j++
		case j > 0 && lineBreak(b[i]) && !lineBreak(v[j]):
		default:
			return 0, false
		}
	}
	if j == len(v) {
		return len(b), false
	}
	return 0, j > 0
}

// redact replaces every value in buf and splits off the tail that could
// still become one.
func (r *Redactor) redact(buf []byte) (out, keep []byte) {
	var b bytes.Buffer
	for i := 0; i < len(buf); {
		done := false
		for _, v := range r.values {
			if buf[i] != v.v[0] {
				continue
			}
			n, partial := match(buf[i:], v.v)
			if partial {
				return b.Bytes(), append([]byte(nil), buf[i:]...)
			}
			if n > 0 {
				b.Write(v.with)
				i += n
				done = true
				break
			}
		}
		if !done {
			b.WriteByte(buf[i])
			i++
		}
	}
	return b.Bytes(), nil
}
