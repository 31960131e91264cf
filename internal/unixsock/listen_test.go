package unixsock

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestListen(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "s.sock")

	ln, err := Listen(sock, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode: %v %v, want 0600", fi.Mode(), err)
	}
	// A live server keeps its socket.
	if _, err := Listen(sock, 0o600); err == nil || !strings.Contains(err.Error(), "another process is serving") {
		t.Fatalf("second Listen on a live socket: %v", err)
	}
	// A dead server's socket file is taken over.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	ln2, err := Listen(sock, 0o666)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	ln2.Close()

	file := filepath.Join(dir, "plain")
	os.WriteFile(file, nil, 0o600)
	if _, err := Listen(file, 0o600); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("a regular file at the path: %v", err)
	}
	if _, err := Listen(filepath.Join(dir, strings.Repeat("x", MaxPath)), 0o600); err == nil || !strings.Contains(err.Error(), "unix sockets allow") {
		t.Errorf("an overlong path: %v", err)
	}
}
