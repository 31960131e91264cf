package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hclparse"
)

// Formatting is idempotent on every config in the repository that parses:
// fmt of fmt is fmt, and fmt keeps the file's meaning (it still parses).
func TestFmtIdempotent(t *testing.T) {
	var files []string
	for _, glob := range []string{"../../examples/*/*.hcl", "../../internal/config/testdata/*.hcl"} {
		m, err := filepath.Glob(glob)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 20 {
		t.Fatalf("found only %d config files: is the glob right?", len(files))
	}
	checked := 0
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, diags := hclparse.NewParser().ParseHCL(src, f); diags.HasErrors() {
			if _, d := formatHCL(src, f); !d.HasErrors() {
				t.Errorf("%s does not parse, but fmt would format it", f)
			}
			continue
		}
		once, diags := formatHCL(src, f)
		if diags.HasErrors() {
			t.Errorf("%s: %s", f, diags)
			continue
		}
		twice, _ := formatHCL(once, f)
		if string(once) != string(twice) {
			t.Errorf("%s: fmt is not idempotent:\n--- once\n%s\n--- twice\n%s", f, once, twice)
		}
		if _, d := hclparse.NewParser().ParseHCL(once, f); d.HasErrors() {
			t.Errorf("%s: formatted, it no longer parses: %s", f, d)
		}
		checked++
	}
	if checked < 20 {
		t.Errorf("only %d files were checked", checked)
	}
}

func TestFmtCheckWriteAndExitCodes(t *testing.T) {
	dir := t.TempDir()
	messy := "run  \"x\"   {}\nagent \"a\" {\ncommand=[\"true\"]\n  memory =   \"64MiB\"\n}\n\n\n"
	clean := "run \"x\" {}\nagent \"a\" {\n  command = [\"true\"]\n  memory  = \"64MiB\"\n}\n"
	path := filepath.Join(dir, "agents.hcl")
	other := filepath.Join(dir, "clean.hcl")
	if err := os.WriteFile(path, []byte(messy), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, []byte(clean), 0o600); err != nil {
		t.Fatal(err)
	}

	// -check lists the file, writes nothing, exits 3.
	out, errOut, code := runCLI(t, "fmt", "-check", dir)
	if code != exitFmtCheck || out != path+"\n" || errOut != "" {
		t.Errorf("fmt -check: exit %d, stdout %q, stderr %q; want 3 and %q", code, out, errOut, path)
	}
	if b, _ := os.ReadFile(path); string(b) != messy {
		t.Errorf("fmt -check wrote the file")
	}
	// -diff shows the change.
	out, _, code = runCLI(t, "fmt", "-check", "-diff", path)
	if code != exitFmtCheck || !strings.Contains(out, "\n-command=[\"true\"]\n") || !strings.Contains(out, "\n+  command = [\"true\"]\n") || !strings.Contains(out, "+++ "+path+" (formatted)\n") {
		t.Errorf("fmt -check -diff: exit %d:\n%s", code, out)
	}
	// fmt rewrites it in place, keeping its mode, and names it.
	out, errOut, code = runCLI(t, "fmt", path, other)
	if code != 0 || out != path+"\n" || errOut != "" {
		t.Errorf("fmt: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	b, _ := os.ReadFile(path)
	if string(b) != clean {
		t.Errorf("fmt wrote\n%s\nwant\n%s", b, clean)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("fmt changed the mode to %v", fi.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
		t.Errorf("fmt left temporary files: %v", left)
	}
	// Now nothing to do: -check passes, silently.
	if out, errOut, code := runCLI(t, "fmt", "-check", dir); code != 0 || out != "" || errOut != "" {
		t.Errorf("fmt -check of formatted files: exit %d, %q, %q", code, out, errOut)
	}

	// A file that does not parse is reported and left alone: exit 1.
	bad := filepath.Join(dir, "bad.hcl")
	os.WriteFile(bad, []byte("agent \"a\" {\n  command = [\"sh\",\n"), 0o644)
	_, errOut, code = runCLI(t, "fmt", bad)
	if code != 1 || !strings.Contains(errOut, "bad.hcl:") {
		t.Errorf("fmt of a broken file: exit %d, %q", code, errOut)
	}
	// A missing file says so.
	_, errOut, code = runCLI(t, "fmt", filepath.Join(dir, "nope.hcl"))
	if code != 1 || !strings.Contains(errOut, "nope.hcl: no such file") {
		t.Errorf("fmt of a missing file: exit %d, %q", code, errOut)
	}
}
