package termsafe

import (
	"bytes"
	"testing"
	"unicode/utf8"
)

// seeds are the payloads an agent would print at the operator.
var seeds = []string{
	"\x1b]52;c;ZWNobyBwd25lZA==\x07",     // OSC 52: write the clipboard
	"\x1b]52;c;?\x07",                    // OSC 52: read it back
	"\x1b]0;root@prod\x07\x1b]2;t\x1b\\", // titles
	"\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\",
	"\x1b]1337;File=inline=1:eA==\x07",
	"\x1bP$q\"p\x1b\\", "\x1bPtmux;\x1b\x1b]52;c;eA==\x07\x1b\\", // DCS, tmux passthrough
	"\x1b_Gf=100;AAAA\x1b\\", "\x1b^pm\x1b\\", "\x1bXsos\x1b\\",
	"\u009b6n", "\x9b6n", "\u009d0;t\u009c", "\x9d0;t\x07", "\u0090q\u009c",
	"\x1b[6n", "\x1b[c", "\x1b[>c", "\x1b[18t", "\x1b[?2004$p", "\x1b[21t", "\x1bZ",
	"\x1b[?1000h\x1b[?1003h\x1b[?1006h\x1b[?1004h", "\x1b[>4;2m", "\x1b[>1u",
	"\x1b[?25;1000;1049h", "\x1b[1;2;3;4;5T", "\x1bc", "\x1b[5i",
	"\x1b[31mred\x1b[0m\x1b[H\x1b[2J\x1b[?25l\x1b(0q\x1b(B\r\n",
	"\x1b\x1b]0;x\x07", "\x1b[\x1b]0;x\x07", "\x1b]0;\x1b[31mx", "\x1b\x01[6n",
	"\xe2\x82", "\xc0\x80", "\xed\xa0\x80", "\u202eevil",
}

// viewOK checks what View may emit: valid UTF-8 with no C1 or bidi
// control, no C0 but \n \r \t \b and ESC, no DEL, and every ESC the start
// of an allowed sequence, so a second pass changes nothing.
func viewOK(t *testing.T, in, out []byte) {
	t.Helper()
	if !utf8.Valid(out) {
		t.Fatalf("View(%q) = %q: invalid UTF-8", in, out)
	}
	for _, r := range string(out) {
		if (r < 0x20 && r != '\n' && r != '\r' && r != '\t' && r != '\b' && r != ec) || r == 0x7f || (r >= 0x80 && r <= 0x9f) || hidden(r) {
			t.Fatalf("View(%q) = %q: holds %U", in, out, r)
		}
	}
	for _, bad := range []string{"\x1b]", "\x1bP", "\x1b_", "\x1b^", "\x1bX", "\x07", "\x1b[6n", "\x1b[c", "\x1b[>", "\x1b[=", "\x1b[?1000", "\x1b[?1004", "\x1bc", "\x1bZ"} {
		if bytes.Contains(out, []byte(bad)) {
			t.Fatalf("View(%q) = %q: holds %q", in, out, bad)
		}
	}
	var again View
	if twice := again.Filter(nil, out); !bytes.Equal(twice, out) {
		t.Fatalf("View(%q) = %q, but filtered again %q: it passed something it would not pass", in, out, twice)
	}
}

func plainOK(t *testing.T, in, out []byte) {
	t.Helper()
	if !utf8.Valid(out) {
		t.Fatalf("Plain(%q) = %q: invalid UTF-8", in, out)
	}
	for _, r := range string(out) {
		if (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f || (r >= 0x80 && r <= 0x9f) || hidden(r) {
			t.Fatalf("Plain(%q) = %q: holds %U", in, out, r)
		}
	}
	if !bytes.Equal(Bytes(out), out) {
		t.Fatalf("Plain(%q) = %q is not stable", in, out)
	}
}

// split feeds in in two parts, cut at cut, through f.
func split(f func(dst, p []byte) []byte, in []byte, cut uint) []byte {
	c := int(cut % uint(len(in)+1))
	out := f(nil, in[:c])
	return f(out, in[c:])
}

func FuzzView(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s), uint(len(s)/2))
	}
	f.Fuzz(func(t *testing.T, in []byte, cut uint) {
		var v View
		out := v.Filter(nil, in)
		viewOK(t, in, out)
		var w View
		if parts := split(w.Filter, in, cut); !bytes.Equal(parts, out) {
			t.Fatalf("View(%q) = %q whole but %q cut at %d", in, out, parts, cut%uint(len(in)+1))
		}
	})
}

func FuzzPlain(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s), uint(len(s)/2))
	}
	f.Fuzz(func(t *testing.T, in []byte, cut uint) {
		out := Bytes(in)
		plainOK(t, in, out)
		var p Plain
		if parts := split(p.Filter, in, cut); !bytes.Equal(parts, out) {
			t.Fatalf("Plain(%q) = %q whole but %q cut at %d", in, out, parts, cut%uint(len(in)+1))
		}
	})
}
