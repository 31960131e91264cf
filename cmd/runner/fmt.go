package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclwrite"

	"github.com/runner-dev/runner/internal/config"
)

// exitFmtCheck is `fmt -check`'s status when a file needs formatting, as
// terraform fmt -check: 1 stays "an error", 2 "bad usage".
const exitFmtCheck = 3

// maxFmtInput bounds what fmt reads from standard input.
const maxFmtInput = 8 << 20

// cmdFmt is `runner fmt [-check] [-diff] [FILE|DIR|-]...`: rewrite config
// files in the canonical format (hclwrite's, as terraform fmt). With no
// argument it formats the *.hcl files of the current directory; "-" reads
// standard input and writes standard output.
func cmdFmt(_ context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	var check, diff, list bool
	fs := g.newFlags("fmt", stderr)
	fs.BoolVar(&check, "check", false, "write nothing; list the files that need formatting and exit 3 if there are any")
	fs.BoolVar(&diff, "diff", false, "print what would change, as a unified diff")
	fs.BoolVar(&list, "list", true, "print the names of the files that were (or, with -check, would be) changed")
	pos, err := g.parseFlags(fs, "fmt", args, stderr)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		pos = []string{"."}
	}
	var files []string
	for _, p := range pos {
		if p == "-" {
			files = append(files, p)
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("fmt: cannot read %s", config.ReadProblem(p, err))
		}
		if !fi.IsDir() {
			files = append(files, p)
			continue
		}
		// A directory: its .hcl files, not its subdirectories (as terraform fmt).
		m, err := filepath.Glob(filepath.Join(p, "*.hcl"))
		if err != nil {
			return err
		}
		sort.Strings(m)
		if len(m) == 0 && len(pos) == 1 {
			return fmt.Errorf("fmt: no .hcl files in %s; name the files to format", p)
		}
		files = append(files, m...)
	}
	unformatted, failed := 0, false
	for _, f := range files {
		changed, err := fmtFile(f, check, diff, list, stdout, stderr)
		if err != nil {
			failed = true
			continue
		}
		if changed {
			unformatted++
		}
	}
	switch {
	case failed:
		return exitError{1}
	case check && unformatted > 0:
		return exitError{exitFmtCheck}
	}
	return nil
}

// fmtFile formats one file; it reports whether the file's bytes change.
// Errors are printed here, as config diagnostics.
func fmtFile(path string, check, diff, list bool, stdout, stderr io.Writer) (bool, error) {
	var src []byte
	var err error
	if path == "-" {
		src, err = io.ReadAll(io.LimitReader(os.Stdin, maxFmtInput+1))
	} else {
		src, err = os.ReadFile(path)
	}
	if err != nil {
		fmt.Fprintf(stderr, "Error: fmt: cannot read %s\n", config.ReadProblem(path, err))
		return false, err
	}
	name := path
	if path == "-" {
		name = "<stdin>"
	}
	out, diags := formatHCL(src, name)
	if diags.HasErrors() {
		// Never rewrite what does not parse: the result could mean
		// something else.
		config.WriteDiagnostics(stderr, diags, map[string]*hcl.File{name: {Bytes: src}}, false)
		return false, diags
	}
	changed := !bytes.Equal(src, out)
	if list && changed && path != "-" {
		fmt.Fprintln(stdout, path)
	}
	if diff && changed {
		if err := writeDiff(stdout, name, src, out); err != nil {
			fmt.Fprintf(stderr, "Error: fmt -diff: %v\n", err)
			return false, err
		}
	}
	switch {
	case path == "-" && !check:
		_, err = stdout.Write(out)
	case changed && !check:
		err = replaceFile(path, out)
	}
	if err != nil {
		fmt.Fprintf(stderr, "Error: fmt: %v\n", err)
		return false, err
	}
	return changed, nil
}

// formatHCL is the canonical form of src: hclwrite's layout, trailing
// blanks and blank lines at the end removed, one newline at the end.
// It fails on a syntax error.
func formatHCL(src []byte, name string) ([]byte, hcl.Diagnostics) {
	if _, diags := hclparse.NewParser().ParseHCL(src, name); diags.HasErrors() {
		return nil, diags
	}
	out := hclwrite.Format(src)
	out = append(bytes.TrimRight(out, " \t\r\n"), '\n')
	if len(bytes.TrimSpace(out)) == 0 {
		out = nil
	}
	return out, nil
}

// replaceFile writes data over path atomically: a temporary file in the same
// directory, with the file's mode, renamed over it. A symlink's target is
// what gets rewritten; the link stays.
func replaceFile(path string, data []byte) error {
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	fi, err := os.Stat(target)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".fmt-*")
	if err != nil {
		return fmt.Errorf("cannot write next to %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(fi.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), target)
}

// writeDiff prints a unified diff of the change with the system's diff(1).
func writeDiff(w io.Writer, name string, old, new []byte) error {
	bin, err := exec.LookPath("diff")
	if err != nil {
		return fmt.Errorf("-diff needs diff(1) on this machine (diffutils): %w", err)
	}
	dir, err := os.MkdirTemp("", "runner-fmt-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	a, b := filepath.Join(dir, "old"), filepath.Join(dir, "new")
	if err := os.WriteFile(a, old, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(b, new, 0o600); err != nil {
		return err
	}
	cmd := exec.Command(bin, "-u", "--label", name, "--label", name+" (formatted)", a, b)
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 {
		err = nil // 1 is "files differ"
	}
	if err != nil {
		return err
	}
	_, err = w.Write(out)
	return err
}
