package termsafe

import (
	"bytes"
	"strings"
	"testing"
)

func TestView(t *testing.T) {
	cases := []struct{ in, want string }{
		// What a screen needs passes as it is.
		{"text\r\n\ttab\bx", "text\r\n\ttab\bx"},
		{"\x1b[31mred\x1b[0m \x1b[38;5;200;48:2::1:2:3m", "\x1b[31mred\x1b[0m \x1b[38;5;200;48:2::1:2:3m"},
		{"\x1b[H\x1b[2J\x1b[K\x1b[10;20H\x1b[5A\x1b[3C\x1b[2;30r\x1b[4L\x1b[2P\x1b[3X\x1b[7@", "\x1b[H\x1b[2J\x1b[K\x1b[10;20H\x1b[5A\x1b[3C\x1b[2;30r\x1b[4L\x1b[2P\x1b[3X\x1b[7@"},
		{"\x1b7\x1b8\x1bM\x1b(0lqk\x1b(B\x1b=\x1b>", "\x1b7\x1b8\x1bM\x1b(0lqk\x1b(B\x1b=\x1b>"},
		{"\x1b[?25l\x1b[?1049h\x1b[?7h\x1b[?2004h\x1b[4h\x1b[2 q", "\x1b[?25l\x1b[?1049h\x1b[?7h\x1b[?2004h\x1b[4h\x1b[2 q"},
		{"\u00e9t\u00e9 \u2603 \U0001F600 \u2500\u2502", "\u00e9t\u00e9 \u2603 \U0001F600 \u2500\u2502"},
		// Everything else is dropped whole.
		{"a\x1b]0;title\x07b\x1b]2;other\x1b\\c", "abc"},
		{"\x1b]52;c;ZWNobyBwd25lZA==\x07x", "x"},
		{"\x1b]8;;https://evil.example/\x1b\\link\x1b]8;;\x1b\\", "link"},
		{"\x1bPtmux;\x1b\x1b]52;c;eA==\x07\x1b\\p", "p"},
		{"\x1bP$q\"p\x1b\\d \x1b_apc\x1b\\a \x1b^pm\x1b\\p \x1bXsos\x1b\\s", "d a p s"},
		{"\x1b[6n\x1b[5n\x1b[c\x1b[>c\x1b[=c\x1b[18t\x1b[8;1;1t\x1b[?2004$p\x1b[2$p\x1b[x", ""},
		{"\x1b[?1000h\x1b[?1002h\x1b[?1003h\x1b[?1006h\x1b[?1015h\x1b[?1004h\x1b[?9h\x1b[1;2;3;4;5T", ""},
		{"\x1b[?25;1000;1049h", "\x1b[?25;1049h"},
		{"\x1b[>4;1m\x1b[>1u\x1b[=1;1u\x1b[20h\x1b[5i\x1b[!p\x1b[0\"q", ""},
		{"\x1bc\x1bZ\x1b#8\x1b%G\x1bN\x1bO\x1b n", ""},
		{"\x1b[99999999B\x1b[1;99999H", ""},
		{"c1\u009b6n\u009b31m\u009d0;t\u0007\u0090q\u009c\u0085nel\u0084", "c1\x1b[31mnel"},
		{"8bit\x9b6n\x9d0;x\x07", "8bit\uFFFD6n\uFFFD0;x"},
		{"bel\x07 nul\x00 so\x0e si\x0f vt\x0b ff\x0c del\x7f", "bel nul so si vt ff del"},
		{"bidi \u202eevil\u202c", "bidi evil"},
		{"\x1b[" + strings.Repeat("1;", 200) + "m after", " after"},
		{"\x1b[31", ""},
		{"\x1b]unterminated", ""},
	}
	for _, c := range cases {
		var v View
		if got := string(v.Filter(nil, []byte(c.in))); got != c.want {
			t.Errorf("View(%q)\n = %q\nwant %q", c.in, got, c.want)
		}
	}
}

func TestViewSplit(t *testing.T) {
	in := []byte("a\x1b[38;5;12mb\x1b]52;c;eA==\x1b\\c\r\n\u00e9\U0001F600\x1bP+q\x1b\\d\u009b1me\x1b(0f\x1b[?1000;25h")
	var whole View
	want := whole.Filter(nil, in)
	if string(want) != "a\x1b[38;5;12mbc\r\n\u00e9\U0001F600d\x1b[1me\x1b(0f\x1b[?25h" {
		t.Fatalf("View = %q", want)
	}
	var v View
	var got []byte
	for _, b := range in {
		got = v.Filter(got, []byte{b})
	}
	if !bytes.Equal(got, want) {
		t.Errorf("byte by byte: %q, want %q", got, want)
	}
}

func TestWriter(t *testing.T) {
	var b bytes.Buffer
	w := NewViewWriter(&b)
	for _, part := range []string{"x\x1b]0;", "title\x07y\x1b[3", "1mz"} {
		if n, err := w.Write([]byte(part)); n != len(part) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if b.String() != "xy\x1b[31mz" {
		t.Errorf("view writer: %q", b.String())
	}
	b.Reset()
	p := NewPlainWriter(&b)
	p.Write([]byte("a\x1b[31"))
	p.Write([]byte("mb\r\n"))
	if b.String() != "ab\n" {
		t.Errorf("plain writer: %q", b.String())
	}
}

func BenchmarkView(b *testing.B) {
	chunk := bytes.Repeat([]byte("\x1b[32mok\x1b[0m some text of a pane \u2500\u2500 \x1b[10;20H\x1b[K\r\n"), 512)
	var v View
	buf := make([]byte, 0, 2*len(chunk))
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		buf = v.Filter(buf[:0], chunk)
	}
}

// Reset undoes what a view lets through, and is itself a view: it passes
// View unchanged. CSI 3 J (erase the scrollback) does not pass.
func TestResetIsAView(t *testing.T) {
	var v View
	if got := string(v.Filter(nil, []byte(Reset))); got != Reset {
		t.Errorf("View(Reset) = %q, want it unchanged", got)
	}
	var w View
	if got := string(w.Filter(nil, []byte("a\x1b[3Jb\x1b[2Jc"))); got != "ab\x1b[2Jc" {
		t.Errorf("erase: %q", got)
	}
}
