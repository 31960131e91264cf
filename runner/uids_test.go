package runner

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/engine"
)

// A remote engine's host accounts cannot be read here: allocation refuses,
// and says to set user; a run whose agents all set user needs no check.
func TestAllocateUsersRemoteEngine(t *testing.T) {
	info := engine.Info{Name: "docker", Endpoint: "tcp://build-host:2376"}
	cfg := &config.Config{Run: config.Run{Name: "r"}, Agents: []config.Agent{{Name: "a"}, {Name: "b", User: "2000:2000"}}}
	r := &Runner{}
	_, err := r.allocateUsers(context.Background(), cfg, info)
	if err == nil || !strings.Contains(err.Error(), "not on this host") || !strings.Contains(err.Error(), "user =") {
		t.Fatalf("remote engine: %v", err)
	}
	cfg.Agents[0].User = "2001:2001"
	users, err := r.allocateUsers(context.Background(), cfg, info)
	if err != nil || users["a"] != "2001:2001" || users["b"] != "2000:2000" {
		t.Fatalf("explicit users on a remote engine: %v %v", users, err)
	}
}

// The rootless daemon's user is whoever listens on its socket.
func TestPeerIDs(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", p)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	uid, gid, err := peerIDs(context.Background(), p)
	if err != nil || uid != uint32(os.Getuid()) || gid != uint32(os.Getgid()) {
		t.Fatalf("peerIDs = %d:%d %v, want %d:%d", uid, gid, err, os.Getuid(), os.Getgid())
	}
}
