package docker

import (
	"context"
	"strings"
	"testing"
)

// An unreachable daemon gets one piece of advice, not the client's and ours.
func TestUnreachableSaysWhatToDoOnce(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
	_, err := New(context.Background(), "")
	if err == nil {
		t.Fatal("connected to a socket that does not exist")
	}
	msg := err.Error()
	low := strings.ToLower(msg)
	if n := strings.Count(low, "daemon running"); n != 1 {
		t.Errorf("%q asks whether the daemon runs %d times, want once", msg, n)
	}
	if !strings.Contains(msg, "unix:///nonexistent/docker.sock (from DOCKER_HOST)") || !strings.Contains(msg, "docker info") {
		t.Errorf("%q does not say where it looked and what to run", msg)
	}
}
