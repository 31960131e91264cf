package runner

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/runner-dev/runner/internal/secrets"
	"github.com/runner-dev/runner/internal/state"
)

// The refresher reads a due from_command or from_file source again,
// stores a changed value (and rewrites a file secret's tmpfs file in
// place, keeping its owner), audits it and reloads the process; a source
// not yet due, an unchanged value and a failing command change nothing.
func TestSecretRefresh(t *testing.T) {
	st := state.Run{Root: t.TempDir(), Name: "r"}
	if err := st.Create(); err != nil {
		t.Fatal(err)
	}
	shmDir = t.TempDir()
	t.Cleanup(func() { shmDir = "/dev/shm" })
	src := filepath.Join(t.TempDir(), "value")
	os.WriteFile(src, []byte("file-v2"), 0o600)
	t0 := time.Unix(1_000_000, 0)
	store := secrets.Store{Agents: map[string]map[string]secrets.Entry{"eng": {
		"TOKEN":  {Kind: secrets.KindInject, Value: "tok-v1", StandIn: "tok-xx", Hosts: []string{"api.x"}, Header: "Authorization", Scheme: "Bearer", Source: secrets.Source{Kind: "from_command", Command: []string{"printf", "tok-v2"}, Timeout: 5 * time.Second}, Refresh: time.Hour, Updated: t0},
		"FILE":   {Kind: secrets.KindFile, Value: "file-v1", File: "/run/secrets/f", Source: secrets.Source{Kind: "from_file", File: src}, Refresh: 2 * time.Hour, Updated: t0},
		"BROKEN": {Kind: secrets.KindFile, Value: "b-v1", File: "/run/secrets/b", Source: secrets.Source{Kind: "from_command", Command: []string{"false"}, Timeout: 5 * time.Second}, Refresh: time.Hour, Updated: t0},
	}}}
	if err := secrets.Save(st, store); err != nil {
		t.Fatal(err)
	}
	dir := fileSecretsDir(st, "eng")
	os.MkdirAll(dir, 0o700)
	if err := writeSecretFile(filepath.Join(dir, "f"), "file-v1", 40001, 40001); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(90 * time.Minute) // TOKEN and BROKEN are due, FILE is not
	s := newRefreshService(st, hclog.NewNullLogger())
	s.now = func() time.Time { return now }
	reloads := 0
	s.reload = func(context.Context) error { reloads++; return nil }
	if err := s.Reload(context.Background(), hostConfig{Secrets: store}); err != nil {
		t.Fatal(err)
	}
	s.refreshDue(context.Background())
	got, _ := secrets.Load(st)
	if v := got.Agents["eng"]["TOKEN"]; v.Value != "tok-v2" || !v.Updated.Equal(now) || v.StandIn != "tok-xx" {
		t.Errorf("TOKEN after its refresh: value %q updated %v stand-in %q", v.Value, v.Updated, v.StandIn)
	}
	if v := got.Agents["eng"]["FILE"].Value; v != "file-v1" {
		t.Errorf("FILE was read before it was due: %q", v)
	}
	if v := got.Agents["eng"]["BROKEN"].Value; v != "b-v1" {
		t.Errorf("a failing refresh changed the value: %q", v)
	}
	if reloads != 1 {
		t.Errorf("%d reloads after one changed value", reloads)
	}
	log, _ := os.ReadFile(st.Audit())
	if !strings.Contains(string(log), "secret_refresh") || strings.Contains(string(log), "tok-v2") {
		t.Errorf("audit after the refresh: %s", log)
	}

	// Two hours in, FILE is due: its tmpfs file is rewritten, owner kept.
	now = t0.Add(2*time.Hour + time.Minute)
	s.Reload(context.Background(), hostConfig{Secrets: got})
	s.refreshDue(context.Background())
	b, _ := os.ReadFile(filepath.Join(dir, "f"))
	fi, _ := os.Stat(filepath.Join(dir, "f"))
	if string(b) != "file-v2" || fi.Mode().Perm() != 0o400 || fileUID(fi) != 40001 {
		t.Errorf("file secret after refresh: %q mode %v uid %d", b, fi.Mode().Perm(), fileUID(fi))
	}
	if reloads != 2 {
		t.Errorf("%d reloads, want 2", reloads)
	}
}

func fileUID(fi os.FileInfo) uint32 {
	if fi == nil {
		return 0
	}
	return fi.Sys().(*syscall.Stat_t).Uid
}
