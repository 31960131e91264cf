package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A config that cannot be read says why, and names the file.
func TestUnreadableConfigSaysWhy(t *testing.T) {
	dir := t.TempDir()
	locked := filepath.Join(dir, "locked.hcl")
	if err := os.WriteFile(locked, []byte(`run "x" {}`), 0o000); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		filepath.Join(dir, "nope.hcl"): "nope.hcl: no such file",
		dir:                            "it is a directory",
	}
	if os.Getuid() != 0 { // root reads any mode
		cases[locked] = "locked.hcl: permission denied for uid"
	}
	for path, want := range cases {
		_, diags := Load(path, nil)
		if !diags.HasErrors() {
			t.Errorf("%s loaded", path)
			continue
		}
		if got := diags[0].Summary + ": " + diags[0].Detail; !strings.Contains(got, want) || strings.Count(got, path) != 1 {
			t.Errorf("Load(%s) = %q; want it to name the file once and say %q", path, got, want)
		}
	}
}
