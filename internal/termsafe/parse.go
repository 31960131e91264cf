package termsafe

import (
	"strconv"
	"unicode/utf8"
)

// The parser splits a terminal byte stream into printable text, C0
// controls, and escape sequences (ESC and CSI ones, in their 7-bit form),
// following the states of a DEC/ECMA-48 terminal closely enough that the
// filters decide on whole sequences. Control strings (OSC, DCS, SOS, PM,
// APC) are consumed and never reported: no filter passes them.
type parser struct {
	state state
	utf   []byte // an incomplete UTF-8 sequence carried to the next call
	seq   []byte // the escape sequence being read, 7-bit form
	long  bool   // seq outgrew maxSeq: the sequence is dropped whole
	// A control string is consumed without a bound in a real terminal,
	// so an agent that opens one and never ends it would hide everything
	// after it. strLen counts its bytes: past maxStr it is abandoned, and
	// with lineStrings (Plain) a newline abandons it too, since a control
	// string never holds one legitimately. Either way a tokDropped says so
	// and what follows is read as text again.
	strLen      int
	lineStrings bool
}

type state uint8

const (
	ground   state = iota
	esc            // after ESC
	escInter       // ESC and intermediate bytes, waiting for the final one
	csi            // in a control sequence
	str            // in OSC, DCS, SOS, PM or APC, until ST (or BEL)
	strEsc         // ESC inside a string: ST if '\' follows
)

const (
	bel = 0x07
	can = 0x18
	sub = 0x1a
	ec  = 0x1b
)

// maxSeq bounds a sequence kept for judging; a longer one is dropped.
const maxSeq = 128

// maxStr bounds a control string (OSC, DCS, SOS, PM, APC) that is dropped.
const maxStr = 4096

type kind uint8

const (
	tokText    kind = iota // printable text, valid UTF-8
	tokCtl                 // one C0 control or DEL
	tokEsc                 // ESC [intermediates] final
	tokCSI                 // ESC [ params [intermediates] final
	tokDropped             // an unterminated control string abandoned; b is its length in decimal
)

// sink receives tokens. b is only valid during the call.
type sink func(k kind, b []byte)

// feed parses p, calling emit for each complete token.
func (s *parser) feed(p []byte, emit sink) {
	for i := 0; i < len(p); i++ {
		b := p[i]
		switch s.state {
		case ground:
			if len(s.utf) > 0 || b >= 0x80 {
				s.rune(b, emit)
				continue
			}
			if b == ec {
				s.start(esc, ec)
				continue
			}
			if b < 0x20 || b == 0x7f {
				emit(tokCtl, p[i:i+1])
				continue
			}
			// A run of printable ASCII at once.
			j := i + 1
			for j < len(p) && p[j] >= 0x20 && p[j] < 0x7f {
				j++
			}
			emit(tokText, p[i:j])
			i = j - 1
		case esc:
			switch {
			case b == '[':
				s.state = csi
				s.add(b)
			case b == ']' || b == 'P' || b == 'X' || b == '^' || b == '_':
				s.startStr()
			case b >= 0x20 && b <= 0x2f:
				s.state = escInter
				s.add(b)
			case b == ec:
				s.start(esc, ec) // ESC ESC: the first one is dropped
			case b == can || b == sub:
				s.state = ground
			case b < 0x20:
				// C0 inside an escape: terminals execute it; dropped here
			case b >= 0x30 && b <= 0x7e:
				s.add(b)
				s.end(tokEsc, emit)
			default: // DEL or an 8-bit byte: not a sequence
				s.state = ground
			}
		case escInter:
			switch {
			case b >= 0x20 && b <= 0x2f:
				s.add(b)
			case b == ec:
				s.start(esc, ec)
			case b < 0x20 && b != can && b != sub:
			case b >= 0x30 && b <= 0x7e:
				s.add(b)
				s.end(tokEsc, emit)
			default:
				s.state = ground
			}
		case csi:
			switch {
			case b >= 0x20 && b <= 0x3f: // parameters and intermediates
				s.add(b)
			case b == ec:
				s.start(esc, ec)
			case b < 0x20 && b != can && b != sub:
			case b >= 0x40 && b <= 0x7e:
				s.add(b)
				s.end(tokCSI, emit)
			default: // CAN, SUB, DEL or an 8-bit byte: dropped whole
				s.state = ground
			}
		case str:
			if s.abandonStr(b, emit) {
				i-- // read it again as text
				continue
			}
			switch b {
			case ec:
				s.state = strEsc
			case bel, can, sub, 0x9c: // 0x9c: ST, alone or as U+009C
				s.state = ground
			}
		case strEsc:
			if s.abandonStr(b, emit) {
				i--
				continue
			}
			switch b {
			case '\\':
				s.state = ground
			case ec:
			default:
				// Any other ESC ends the string and starts a sequence.
				s.start(esc, ec)
				i--
			}
		}
	}
}

func (s *parser) startStr() {
	s.state = str
	s.strLen = 0
}

// abandonStr ends the control string being consumed before b when it has
// run too long, or at a newline in line mode, and reports whether it did.
func (s *parser) abandonStr(b byte, emit sink) bool {
	s.strLen++
	if s.strLen <= maxStr && !(s.lineStrings && b == '\n') {
		return false
	}
	s.state = ground
	emit(tokDropped, strconv.AppendInt(nil, int64(s.strLen-1), 10))
	return true
}

func (s *parser) start(st state, b byte) {
	s.state = st
	s.seq = append(s.seq[:0], b)
	s.long = false
}

func (s *parser) add(b byte) {
	if len(s.seq) >= maxSeq {
		s.long = true
		return
	}
	s.seq = append(s.seq, b)
}

func (s *parser) end(k kind, emit sink) {
	s.state = ground
	if !s.long {
		emit(k, s.seq)
	}
	s.seq = s.seq[:0]
}

// rune handles a byte of a multi-byte UTF-8 sequence in the ground state.
func (s *parser) rune(b byte, emit sink) {
	if len(s.utf) > 0 && b&0xc0 != 0x80 {
		// The sequence was cut short: say so, and read b afresh.
		emit(tokText, replacement)
		s.utf = s.utf[:0]
		s.feed([]byte{b}, emit)
		return
	}
	s.utf = append(s.utf, b)
	if !utf8.FullRune(s.utf) {
		return
	}
	r, size := utf8.DecodeRune(s.utf)
	var enc [utf8.UTFMax]byte
	n := copy(enc[:], s.utf)
	s.utf = s.utf[:0]
	switch {
	case r == utf8.RuneError && size <= 1:
		emit(tokText, replacement)
		if n > 1 {
			// Only the first byte is bad; the rest is read afresh.
			s.feed(enc[1:n], emit)
		}
	case r == 0x9b: // CSI
		s.start(csi, ec)
		s.seq = append(s.seq, '[')
	case r == 0x9d || r == 0x90 || r == 0x98 || r == 0x9e || r == 0x9f: // OSC DCS SOS PM APC
		s.startStr()
	case r >= 0x80 && r <= 0x9f: // other C1 controls
	case hidden(r):
	default:
		emit(tokText, enc[:n])
	}
}

var replacement = []byte("\uFFFD")

// hidden reports format characters that reorder or hide text on screen
// (bidirectional embeddings, overrides and isolates), so that what a line
// shows is what it says.
func hidden(r rune) bool {
	return (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == 0x200e || r == 0x200f || r == 0x061c
}
