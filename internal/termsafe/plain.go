package termsafe

// Plain turns a terminal byte stream into plain text, safe to print
// anywhere: it removes every escape sequence (CSI, OSC, DCS, SOS, PM, APC
// and the short ESC ones, in their 7-bit and C1 forms), every control
// character but \n and \t (so \r\n becomes \n), DEL, and the bidirectional
// format characters; invalid UTF-8 becomes U+FFFD. A control string left
// open is abandoned at the next newline (or after 4 KiB) with a note
// saying so, so an agent cannot hide what it prints next. The zero value
// is ready; it keeps its state between calls.
type Plain struct {
	p   parser
	dst []byte
}

// Filter appends the plain text of p to dst.
func (s *Plain) Filter(dst, p []byte) []byte {
	s.p.lineStrings = true
	s.dst = dst
	s.p.feed(p, s.emit)
	dst, s.dst = s.dst, nil
	return dst
}

func (s *Plain) emit(k kind, b []byte) {
	switch k {
	case tokText:
		s.dst = append(s.dst, b...)
	case tokCtl:
		if b[0] == '\n' || b[0] == '\t' {
			s.dst = append(s.dst, b[0])
		}
	case tokDropped:
		s.dst = append(s.dst, "[runner: an unterminated escape string of "...)
		s.dst = append(s.dst, b...)
		s.dst = append(s.dst, " bytes was dropped]"...)
	}
}

// Text returns the plain text of a complete string (see Plain).
func Text(s string) string {
	var p Plain
	return string(p.Filter(nil, []byte(s)))
}

// Bytes returns the plain text of a complete byte stream (see Plain).
func Bytes(b []byte) []byte {
	var p Plain
	return p.Filter(nil, b)
}

// Line is Text on one line, for a table cell or a log field: newlines and
// tabs become spaces.
func Line(s string) string {
	b := Bytes([]byte(s))
	for i, c := range b {
		if c == '\n' || c == '\t' {
			b[i] = ' '
		}
	}
	return string(b)
}
