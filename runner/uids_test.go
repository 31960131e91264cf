package runner

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// listEngine answers List only; the uniqueness check needs nothing else.
type listEngine struct {
	engine.Engine
	list []engine.Container
}

func (e listEngine) List(context.Context, string) ([]engine.Container, error) { return e.list, nil }

func TestCheckUIDUnique(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := func(id, run string, at time.Time, user string) engine.Container {
		return engine.Container{ID: id, Run: run, Agent: "a", Created: at, Labels: map[string]string{engine.LabelUser: user}}
	}
	mine := desiredAgent{agent: config.Agent{Name: "a"}, spec: engine.Spec{User: "40001:40001"}}
	for _, tc := range []struct {
		name   string
		list   []engine.Container
		refuse bool
	}{
		{"alone", []engine.Container{c("me", "r", t0, "40001:40001"), c("x", "o", t0, "40002:40002")}, false},
		{"older other", []engine.Container{c("me", "r", t0.Add(time.Second), "40001:40001"), c("x", "o", t0, "40001:40001")}, true},
		{"newer other", []engine.Container{c("me", "r", t0, "40001:40001"), c("x", "o", t0.Add(time.Second), "40001:40001")}, false},
		{"same second, lower id wins", []engine.Container{c("b", "r", t0, "40001:40001"), c("a", "o", t0, "40001:40001")}, true},
	} {
		id := "me"
		if tc.name == "same second, lower id wins" {
			id = "b"
		}
		r := &Runner{Engine: listEngine{list: tc.list}}
		err := r.checkUIDUnique(context.Background(), mine, id)
		if (err != nil) != tc.refuse {
			t.Errorf("%s: %v, refuse %v", tc.name, err, tc.refuse)
		}
	}
	// The file's user is the operator's choice: never refused here.
	explicit := desiredAgent{agent: config.Agent{Name: "a", User: "40001:40001"}, spec: engine.Spec{User: "40001:40001"}}
	r := &Runner{Engine: listEngine{list: []engine.Container{c("me", "r", t0.Add(time.Second), "40001:40001"), c("x", "o", t0, "40001:40001")}}}
	if err := r.checkUIDUnique(context.Background(), explicit, "me"); err != nil {
		t.Errorf("explicit user: %v", err)
	}
}
