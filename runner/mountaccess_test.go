package runner

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUnwritable(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "ws")
	os.Mkdir(p, 0o755)
	os.Chown(p, 1234, 1234)
	os.Chmod(p, 0o755)
	if why := unwritable(p, 40001, 40001); !strings.Contains(why, "owner 1234") || !strings.Contains(why, "mode 0755") {
		t.Errorf("0755 owned by 1234, uid 40001: %q", why)
	}
	if why := unwritable(p, 1234, 1234); why != "" {
		t.Errorf("its owner: %q", why)
	}
	os.Chmod(p, 0o775)
	if why := unwritable(p, 40001, 1234); why != "" {
		t.Errorf("group-writable, in its group: %q", why)
	}
	os.Chmod(p, 0o777)
	if why := unwritable(p, 40001, 40001); why != "" {
		t.Errorf("0777: %q", why)
	}
	if why := unwritable(filepath.Join(dir, "gone"), 1, 1); why != "" {
		t.Errorf("missing: %q", why)
	}
}
