package config

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// WriteDiagnostics prints diags the way Terraform does: "Error: summary", the
// file and line with the enclosing block, the source lines with the offending
// range underlined, the values the expression used, then the detail. files
// (from Loader.Files) supplies the source; without it the snippet is omitted.
//
// With color the severity is red or yellow and the range is underlined with
// terminal escapes; without color a line of carets marks the range, so the
// output reads the same in a log file.
func WriteDiagnostics(w io.Writer, diags hcl.Diagnostics, files map[string]*hcl.File, color bool) error {
	var b strings.Builder
	for _, diag := range diags {
		writeDiagnostic(&b, diag, files, color)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

const (
	escRed       = "\x1b[1;31m"
	escYellow    = "\x1b[1;33m"
	escBold      = "\x1b[1m"
	escUnderline = "\x1b[1;4m"
	escReset     = "\x1b[0m"
)

func writeDiagnostic(b *strings.Builder, diag *hcl.Diagnostic, files map[string]*hcl.File, color bool) {
	severity, esc := "Error", escRed
	if diag.Severity == hcl.DiagWarning {
		severity, esc = "Warning", escYellow
	}
	if color {
		fmt.Fprintf(b, "%s%s:%s %s%s%s\n\n", esc, severity, escReset, escBold, diag.Summary, escReset)
	} else {
		fmt.Fprintf(b, "%s: %s\n\n", severity, diag.Summary)
	}
	if diag.Subject != nil {
		writeSnippet(b, diag, files, color)
		b.WriteString(exprValues(diag))
	}
	if diag.Detail != "" {
		fmt.Fprintf(b, "%s\n\n", diag.Detail)
	}
}

func writeSnippet(b *strings.Builder, diag *hcl.Diagnostic, files map[string]*hcl.File, color bool) {
	subject := *diag.Subject
	file := files[subject.Filename]
	if file == nil || file.Bytes == nil {
		fmt.Fprintf(b, "  on %s:%d:%d:\n  (source code not available)\n\n", subject.Filename, subject.Start.Line, subject.Start.Column)
		return
	}
	var in string
	if nav, ok := file.Nav.(interface{ ContextString(int) string }); ok {
		if s := nav.ContextString(subject.Start.Byte); s != "" {
			in = ", in " + s
		}
	}
	fmt.Fprintf(b, "  on %s:%d:%d%s:\n", subject.Filename, subject.Start.Line, subject.Start.Column, in)

	// An empty range (a missing item) is shown as the character it starts at.
	highlight := subject
	if highlight.Empty() {
		highlight.End.Byte++
		highlight.End.Column++
	}
	snippet := highlight
	if diag.Context != nil {
		snippet = hcl.RangeOver(snippet, *diag.Context)
	}
	src := file.Bytes
	sc := hcl.NewRangeScanner(src, subject.Filename, bufio.ScanLines)
	for sc.Scan() {
		line := sc.Range()
		if !line.Overlaps(snippet) {
			continue
		}
		before, marked, after := line.PartitionAround(highlight)
		switch {
		case marked.Empty():
			fmt.Fprintf(b, "%4d: %s\n", line.Start.Line, sc.Bytes())
		case color:
			fmt.Fprintf(b, "%4d: %s%s%s%s%s\n", line.Start.Line,
				before.SliceBytes(src), escUnderline, marked.SliceBytes(src), escReset, after.SliceBytes(src))
		default:
			fmt.Fprintf(b, "%4d: %s\n", line.Start.Line, sc.Bytes())
			fmt.Fprintf(b, "      %s%s\n", blank(before.SliceBytes(src)),
				strings.Repeat("^", max(1, utf8.RuneCount(marked.SliceBytes(src)))))
		}
	}
	b.WriteString("\n")
}

// blank turns text into whitespace of the same width, keeping tabs, so the
// carets line up under it.
func blank(text []byte) string {
	var b strings.Builder
	for _, r := range string(text) {
		if r == '\t' {
			b.WriteRune('\t')
		} else {
			b.WriteByte(' ')
		}
	}
	return b.String()
}

// exprValues renders the values of the variables the diagnostic's expression
// referenced ("with count.index as 2,\n     var.user as \"0\".\n\n"), which
// tells apart the instances of a counted agent. It is "" when there are none.
func exprValues(diag *hcl.Diagnostic) string {
	if diag.Expression == nil || diag.EvalContext == nil {
		return ""
	}
	var stmts []string
	for _, t := range diag.Expression.Variables() {
		val, diags := t.TraverseAbs(diag.EvalContext)
		if diags.HasErrors() || !val.IsWhollyKnown() {
			continue // unknown because of an earlier error: nothing useful to say
		}
		stmt := traversalString(t) + " as " + valueString(val)
		if !slices.Contains(stmts, stmt) {
			stmts = append(stmts, stmt)
		}
	}
	if len(stmts) == 0 {
		return ""
	}
	slices.Sort(stmts)
	return "with " + strings.Join(stmts, ",\n     ") + ".\n\n"
}

func traversalString(t hcl.Traversal) string {
	var b strings.Builder
	for _, step := range t {
		switch step := step.(type) {
		case hcl.TraverseRoot:
			b.WriteString(step.Name)
		case hcl.TraverseAttr:
			b.WriteString("." + step.Name)
		case hcl.TraverseIndex:
			if step.Key.Type().IsPrimitiveType() && !step.Key.IsNull() {
				b.WriteString("[" + valueString(step.Key) + "]")
			} else {
				b.WriteString("[...]")
			}
		}
	}
	return b.String()
}

// valueString is a short description of v: primitives in full, collections
// by size, so a long list does not swamp the message.
func valueString(v cty.Value) string {
	if v.ContainsMarked() {
		return "(sensitive value)"
	}
	ty := v.Type()
	switch {
	case v.IsNull():
		return "null"
	case ty == cty.Bool:
		return fmt.Sprint(v.True())
	case ty == cty.Number:
		return v.AsBigFloat().Text('g', 10)
	case ty == cty.String:
		return fmt.Sprintf("%q", v.AsString())
	case ty.IsCollectionType() || ty.IsTupleType():
		switch n := v.LengthInt(); n {
		case 0:
			return "empty " + ty.FriendlyName()
		case 1:
			return ty.FriendlyName() + " with 1 element"
		default:
			return fmt.Sprintf("%s with %d elements", ty.FriendlyName(), n)
		}
	case ty.IsObjectType():
		return fmt.Sprintf("object with %d attributes", len(ty.AttributeTypes()))
	default:
		return ty.FriendlyName()
	}
}
