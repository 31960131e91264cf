package termsafe

import (
	"bytes"
	"strconv"
)

// View filters the byte stream of a terminal view (a tmux client's output)
// down to what drawing a screen needs; see the package comment for the
// list. A sequence it keeps is passed in its 7-bit form, a sequence it
// drops is dropped whole, and what comes out never leaves the terminal in
// the middle of a sequence. The zero value is ready; it keeps its state
// between calls.
type View struct {
	p   parser
	dst []byte
}

// Filter appends what may reach the terminal of p to dst.
func (v *View) Filter(dst, p []byte) []byte {
	v.dst = dst
	v.p.feed(p, v.emit)
	dst, v.dst = v.dst, nil
	return dst
}

func (v *View) emit(k kind, b []byte) {
	switch k {
	case tokText:
		v.dst = append(v.dst, b...)
	case tokCtl:
		switch b[0] {
		case '\n', '\r', '\t', '\b':
			v.dst = append(v.dst, b[0])
		}
	case tokEsc:
		if escAllowed(b) {
			v.dst = append(v.dst, b...)
		}
	case tokCSI:
		v.dst = appendCSI(v.dst, b)
	}
}

// escAllowed: the short ESC sequences a screen needs.
func escAllowed(seq []byte) bool {
	switch string(seq[1:]) {
	case "7", "8", // save, restore cursor
		"D", "E", "M", // index, next line, reverse index
		"H",      // set a tab stop
		"=", ">", // keypad modes
		"(B", "(0", ")B", ")0", "(A", ")A": // charsets: ASCII, line drawing, UK
		return true
	}
	return false
}

// csiAllowed are the finals of the plain (no prefix, no intermediate)
// control sequences that move the cursor, erase, insert, delete, scroll
// and colour: none of them makes the terminal answer or changes anything
// but the screen.
var csiAllowed = func() (t [128]bool) {
	for _, f := range "ABCDEFGHIJKLMPSTXZ@`abdefmrIg" {
		t[f] = true
	}
	return t
}()

// privateModes are the DEC private modes (CSI ? N h / l) a view may set:
// cursor keys, origin, autowrap, blinking and visible cursor, the
// alternate screen, bracketed paste (it only marks the operator's own
// pastes) and synchronized output. Mouse, focus and every other mode are
// dropped.
var privateModes = map[string]bool{
	"1": true, "6": true, "7": true, "12": true, "25": true,
	"47": true, "1047": true, "1048": true, "1049": true, "2004": true, "2026": true,
}

// appendCSI appends the part of a control sequence a view may pass.
func appendCSI(dst, seq []byte) []byte {
	body := seq[2 : len(seq)-1] // between ESC [ and the final
	final := seq[len(seq)-1]
	if len(body) > 0 && body[0] == '?' && (final == 'h' || final == 'l') {
		// Keep only the allowed modes of a list.
		var kept []byte
		for m := range bytes.SplitSeq(body[1:], []byte{';'}) {
			if privateModes[string(m)] {
				if len(kept) > 0 {
					kept = append(kept, ';')
				}
				kept = append(kept, m...)
			}
		}
		if len(kept) == 0 {
			return dst
		}
		dst = append(dst, ec, '[', '?')
		dst = append(dst, kept...)
		return append(dst, final)
	}
	if final == 'q' && (string(body) == " " || (len(body) == 2 && isDigit(body[0]) && body[1] == ' ')) {
		return append(dst, seq...) // DECSCUSR: the cursor's shape
	}
	for _, c := range body {
		if !isDigit(c) && c != ';' && !(c == ':' && final == 'm') {
			return dst // a prefix or intermediate: not one of ours
		}
	}
	switch {
	case final == 'h' || final == 'l':
		if string(body) == "4" { // insert mode
			return append(dst, seq...)
		}
		return dst
	case (final == 's' || final == 'u') && len(body) == 0: // save, restore cursor
		return append(dst, seq...)
	case final == 'T' && bytes.IndexByte(body, ';') >= 0:
		return dst // with parameters, T starts xterm's mouse tracking
	case final == 'J' && string(body) == "3":
		return dst // erase the scrollback: the operator's history is not the view's
	case final < 128 && csiAllowed[final]:
		if final != 'm' && !smallParams(body) {
			return dst
		}
		return append(dst, seq...)
	}
	return dst
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// smallParams: every parameter fits a screen (at most 9999), so a
// sequence cannot ask a terminal to repeat or move a billion times.
func smallParams(body []byte) bool {
	for p := range bytes.SplitSeq(body, []byte{';'}) {
		if len(p) == 0 {
			continue
		}
		if n, err := strconv.Atoi(string(p)); err != nil || n > 9999 {
			return false
		}
	}
	return true
}

// Reset puts back every terminal state a view can change (the only
// states View lets through): attributes, charsets, scroll region, origin,
// insert, cursor keys and keypad, bracketed paste, synchronized output,
// the alternate screen, autowrap, a visible steady cursor. A view's source
// can stop at any byte (an agent can kill its own tmux client mid-draw),
// so whoever shows a view writes Reset when it ends.
const Reset = "\x1b[0m\x1b(B\x1b)B\x1b[r\x1b[?6l\x1b[4l\x1b[?1l\x1b>\x1b[?2004l\x1b[?2026l\x1b[?1049l\x1b[?7h\x1b[?12l\x1b[?25h\x1b[0 q"
