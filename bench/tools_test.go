package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// buildTools builds runner and runner-agent from this checkout into a
// fresh directory, which it returns: every benchmark measures the code
// under test, never an installed copy.
func buildTools(b *testing.B) string {
	b.Helper()
	root, _ := filepath.Abs("..")
	tmp := b.TempDir()
	for name, pkg := range map[string]string{"runner": "./cmd/runner", "runner-agent": "./cmd/runner-agent"} {
		build := exec.Command("go", "build", "-o", filepath.Join(tmp, name), pkg)
		build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			b.Fatalf("%v\n%s", err, out)
		}
	}
	return tmp
}
