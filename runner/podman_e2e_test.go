package runner_test

// The Podman backend of the engine table: rootless Podman's service
// (scripts/podman-service.sh) through its Docker-compatible API, with
// Podman's own API for create and the read-back (internal/engine/docker/
// libpod.go). Checks from outside read the OCI spec Podman wrote for runc.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runner-dev/runner/internal/engine/docker"
)

// connectPodman opens Podman's service at te.host and refuses an endpoint
// that answers as Docker.
func (te *testEngine) connectPodman(ctx context.Context) error {
	if err := te.connectDocker(ctx); err != nil {
		return err
	}
	if !te.eng.(*docker.Engine).IsPodman() {
		return fmt.Errorf("%s answers as Docker, not Podman", te.host)
	}
	te.env = []string{"CONTAINER_HOST=" + te.host}
	return nil
}

// podmanSpec reads the OCI spec Podman wrote for the container's runtime.
func podmanSpec(t *testing.T, te *testEngine, id string) *specs.Spec {
	t.Helper()
	sock := strings.TrimPrefix(te.host, "unix://")
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := hc.Get("http://d/v4.0.0/libpod/containers/" + id + "/json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var li struct{ StaticDir string }
	if err := json.NewDecoder(resp.Body).Decode(&li); err != nil || li.StaticDir == "" {
		t.Fatalf("libpod inspect %s: %v, static dir %q", id, err, li.StaticDir)
	}
	b, err := os.ReadFile(filepath.Join(li.StaticDir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sp specs.Spec
	if err := json.Unmarshal(b, &sp); err != nil {
		t.Fatal(err)
	}
	return &sp
}
