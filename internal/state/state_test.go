package state

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCreateModes(t *testing.T) {
	// The root's parents need not exist (a fresh ~/.local/state).
	r := Run{Root: filepath.Join(t.TempDir(), "local", "state", "runner"), Name: "demo"}
	if err := r.Create(); err != nil {
		t.Fatal(err)
	}
	if err := r.CreateAgentRelayDir("eng-1"); err != nil {
		t.Fatal(err)
	}
	if err := r.CreateEgressAgentDir("eng-1"); err != nil {
		t.Fatal(err)
	}
	if err := r.CreateEgressAgentDir("../x"); err == nil {
		t.Error("an agent egress directory was made for the name ../x")
	}
	if err := r.CreateAgentRelayDir("../x"); err == nil {
		t.Error("an agent relay directory was made for the name ../x")
	}
	for path, want := range map[string]os.FileMode{
		r.Root: 0o711, r.Dir(): 0o711, r.RelayDir(): 0o700, r.AgentRelayDir("eng-1"): 0o755,
		r.Private(): 0o700, filepath.Dir(r.Cred("x")): 0o700, r.Journal(): 0o700,
		r.EgressDir(): 0o700, r.EgressAgentDir("eng-1"): 0o755,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %o, want %o", path, got, want)
		}
	}
	// Create is idempotent and restores modes someone loosened.
	os.Chmod(r.Private(), 0o755)
	if err := r.Create(); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(r.Private()); fi.Mode().Perm() != 0o700 {
		t.Errorf("private dir left at %o", fi.Mode().Perm())
	}
}

func TestWriteFileIsAtomicWithMode(t *testing.T) {
	r := Run{Root: t.TempDir(), Name: "demo"}
	if err := r.Create(); err != nil {
		t.Fatal(err)
	}
	p := r.Cred("alice")
	if err := r.WriteFile(p, []byte("secret\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o444 {
		t.Fatalf("stat %s: %v %v", p, fi, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("temp file left behind: %s", e.Name())
		}
	}
}

func TestRemoveArchivesAudit(t *testing.T) {
	r := Run{Root: t.TempDir(), Name: "demo"}
	if err := r.Create(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(r.Audit(), []byte("{}\n"), 0o600)
	os.WriteFile(r.Audit()+".000001", []byte("{\"old\":1}\n"), 0o600)
	archived, err := r.Remove()
	if err != nil {
		t.Fatal(err)
	}
	if r.Exists() {
		t.Error("run directory still exists")
	}
	if b, err := os.ReadFile(archived); err != nil || string(b) != "{}\n" {
		t.Errorf("archived audit log %s: %q %v", archived, b, err)
	}
	// An older segment of the log goes with it.
	if b, err := os.ReadFile(archived + ".000001"); err != nil || string(b) != "{\"old\":1}\n" {
		t.Errorf("archived audit segment: %q %v", b, err)
	}
	// Removing again is fine.
	if _, err := r.Remove(); err != nil {
		t.Error(err)
	}
}

func TestForRunValidatesName(t *testing.T) {
	t.Setenv("RUNNER_STATE_DIR", t.TempDir())
	if _, err := ForRun("../etc"); err == nil {
		t.Error("a run name with a path in it was accepted")
	}
	r, err := ForRun("ok")
	if err != nil || !strings.HasPrefix(r.Dir(), os.Getenv("RUNNER_STATE_DIR")) {
		t.Errorf("ForRun: %v %v", r, err)
	}
}
