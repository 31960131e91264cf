package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"

	"golang.org/x/term"
)

// Colour is the CLI's own: it is added after termsafe has made the text
// plain, so no colour (or anything else) a container wrote gets through,
// and only at the start of a line: "Error:", "Warning:" and plan symbols.
// It is on for a terminal, off when piped, with NO_COLOR set (no-color.org)
// or TERM=dumb.

func colorFor(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return false
	}
	if _, set := os.LookupEnv("NO_COLOR"); set {
		return false
	}
	return os.Getenv("TERM") != "dumb"
}

// plural is "1 agent", "2 agents".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

const (
	sgrRed    = "\x1b[31m"
	sgrGreen  = "\x1b[32m"
	sgrYellow = "\x1b[33m"
	sgrBold   = "\x1b[1m"
	sgrReset  = "\x1b[0m"
)

type paintRule struct {
	re    *regexp.Regexp // matches at a line's start; group 1 is painted
	color string
}

// stderrRules colour the severity of errors and warnings (config
// diagnostics included: they start "Error: " and "Warning: ").
var stderrRules = []paintRule{
	{regexp.MustCompile(`^(Error:)`), sgrBold + sgrRed},
	{regexp.MustCompile(`^(Warning:)`), sgrBold + sgrYellow},
}

// planRules colour plan symbols as Terraform does: + create, - delete,
// -/+ replace, ~ update, ! weakens isolation.
var planRules = []paintRule{
	{regexp.MustCompile(`^ *(-/\+) `), sgrYellow},
	{regexp.MustCompile(`^ *(\+) `), sgrGreen},
	{regexp.MustCompile(`^ *(-) `), sgrRed},
	{regexp.MustCompile(`^ *(~) `), sgrYellow},
	{regexp.MustCompile(`^ *(!) `), sgrBold + sgrRed},
	{regexp.MustCompile(`^(Error:)`), sgrBold + sgrRed},
	{regexp.MustCompile(`^(Warning:)`), sgrBold + sgrYellow},
}

// painter colours what is written to it, line by line, by rules. A rule
// matches within one write: the CLI writes whole lines.
type painter struct {
	w      io.Writer
	rules  []paintRule
	midway bool // the last write did not end a line
}

func newPainter(w io.Writer, rules []paintRule) io.Writer {
	return &painter{w: w, rules: rules}
}

func (p *painter) Write(b []byte) (int, error) {
	var out bytes.Buffer
	rest := b
	for len(rest) > 0 {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line = rest[:i+1]
		}
		rest = rest[len(line):]
		if !p.midway {
			line = p.paint(line)
		}
		out.Write(line)
		p.midway = line[len(line)-1] != '\n'
	}
	if _, err := p.w.Write(out.Bytes()); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (p *painter) paint(line []byte) []byte {
	for _, r := range p.rules {
		m := r.re.FindSubmatchIndex(line)
		if m == nil {
			continue
		}
		var b []byte
		b = append(b, line[:m[2]]...)
		b = append(b, r.color...)
		b = append(b, line[m[2]:m[3]]...)
		b = append(b, sgrReset...)
		return append(b, line[m[3]:]...)
	}
	return line
}
