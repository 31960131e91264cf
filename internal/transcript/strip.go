package transcript

import (
	"unicode/utf8"
)

// Stripper turns a terminal byte stream into plain text, safe to print: it
// removes escape sequences (CSI, OSC, DCS, SOS, PM, APC, and the short ESC
// ones, in their 7-bit and C1 forms), every control character but \n and
// \t (so \r\n becomes \n), and DEL; invalid UTF-8 becomes U+FFFD. It keeps
// its state between calls, so a sequence split across chunks is still
// removed whole.
type Stripper struct {
	state stripState
	utf   []byte // an incomplete UTF-8 sequence carried to the next call
}

type stripState uint8

const (
	ground   stripState = iota
	esc                 // after ESC
	escInter            // ESC and intermediate bytes, waiting for the final one
	csi                 // in a control sequence
	str                 // in OSC, DCS, SOS, PM or APC, until ST (or BEL)
	strEsc              // ESC inside a string: ST if '\' follows
)

const (
	bel = 0x07
	can = 0x18
	sub = 0x1a
	ec  = 0x1b
)

// Strip appends the plain text of p to dst.
func (s *Stripper) Strip(dst, p []byte) []byte {
	for i := 0; i < len(p); i++ {
		b := p[i]
		switch s.state {
		case ground:
			if len(s.utf) > 0 || b >= 0x80 {
				dst = s.rune(dst, b)
				continue
			}
			switch {
			case b == ec:
				s.state = esc
			case b == '\n' || b == '\t':
				dst = append(dst, b)
			case b < 0x20 || b == 0x7f:
				// dropped
			default:
				dst = append(dst, b)
			}
		case esc:
			switch {
			case b == '[':
				s.state = csi
			case b == ']' || b == 'P' || b == 'X' || b == '^' || b == '_':
				s.state = str
			case b >= 0x20 && b <= 0x2f:
				s.state = escInter
			case b == ec:
				// ESC ESC: still an escape
			case b == can || b == sub:
				s.state = ground
			case b < 0x20:
				// C0 inside an escape is executed by terminals; dropped here
			default:
				s.state = ground
			}
		case escInter:
			switch {
			case b >= 0x20 && b <= 0x2f:
			case b == ec:
				s.state = esc
			case b < 0x20 && b != can && b != sub:
			default:
				s.state = ground
			}
		case csi:
			switch {
			case b >= 0x20 && b <= 0x3f: // parameters and intermediates
			case b == ec:
				s.state = esc
			case b < 0x20 && b != can && b != sub:
			default: // the final byte, CAN, SUB, or garbage: the end
				s.state = ground
			}
		case str:
			switch b {
			case ec:
				s.state = strEsc
			case bel, can, sub:
				s.state = ground
			}
		case strEsc:
			switch b {
			case '\\':
				s.state = ground
			case ec:
			default:
				// Any other ESC ends the string and starts a sequence.
				s.state = esc
				i--
			}
		}
	}
	return dst
}

// rune handles a byte of a multi-byte UTF-8 sequence in the ground state.
func (s *Stripper) rune(dst []byte, b byte) []byte {
	if len(s.utf) > 0 && !isCont(b) {
		// The sequence was cut short: say so, and read b afresh.
		dst = append(dst, "\uFFFD"...)
		s.utf = s.utf[:0]
		return s.Strip(dst, []byte{b})
	}
	s.utf = append(s.utf, b)
	if !utf8.FullRune(s.utf) {
		return dst
	}
	r, size := utf8.DecodeRune(s.utf)
	s.utf = s.utf[:0]
	switch {
	case r == utf8.RuneError && size <= 1:
		dst = append(dst, "\uFFFD"...)
	case r == 0x9b: // CSI
		s.state = csi
	case r == 0x9d || r == 0x90 || r == 0x98 || r == 0x9e || r == 0x9f: // OSC DCS SOS PM APC
		s.state = str
	case r >= 0x80 && r <= 0x9f: // other C1 controls
	default:
		dst = utf8.AppendRune(dst, r)
	}
	return dst
}

func isCont(b byte) bool { return b&0xc0 == 0x80 }

// Strip returns the plain text of a complete byte stream.
func Strip(p []byte) []byte {
	var s Stripper
	return s.Strip(nil, p)
}
