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

	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/engine/docker"
	"github.com/runner-dev/runner/runner"
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
	b, err := os.ReadFile(podmanSpecPath(t, te, id))
	if err != nil {
		t.Fatal(err)
	}
	var sp specs.Spec
	if err := json.Unmarshal(b, &sp); err != nil {
		t.Fatal(err)
	}
	return &sp
}

// podmanSpecPath is where that spec is: config.json in the static
// directory libpod's inspect names.
func podmanSpecPath(t *testing.T, te *testEngine, id string) string {
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
	return filepath.Join(li.StaticDir, "config.json")
}

// TestPodmanFailsClosed: the read-back reads the spec runc will get, not
// Podman's bookkeeping: a container whose config.json is weakened after
// create (as a compromised or buggy Podman could) is refused and removed,
// never started.
func TestPodmanFailsClosed(t *testing.T) {
	te := podmanEngine(t)
	for name, c := range map[string]struct {
		setting string
		weaken  func(*specs.Spec)
	}{
		"capability": {"CapAdd", func(sp *specs.Spec) {
			sp.Process.Capabilities = &specs.LinuxCapabilities{Bounding: []string{"CAP_SYS_ADMIN"}}
		}},
		"no-seccomp":    {"SeccompProfile", func(sp *specs.Spec) { sp.Linux.Seccomp = nil }},
		"unmasked":      {"MaskedPaths", func(sp *specs.Spec) { sp.Linux.MaskedPaths = sp.Linux.MaskedPaths[:1] }},
		"writable-root": {"ReadonlyRootfs", func(sp *specs.Spec) { sp.Root.Readonly = false }},
		"uid-0":         {"User", func(sp *specs.Spec) { sp.Process.User = specs.User{} }},
		"a-disk": {"Devices", func(sp *specs.Spec) {
			sp.Linux.Devices = append(sp.Linux.Devices, specs.LinuxDevice{Path: "/dev/sda", Type: "b", Major: 8})
		}},
		"host-netns": {"NetworkMode", func(sp *specs.Spec) {
			for i, ns := range sp.Linux.Namespaces {
				if ns.Type == specs.NetworkNamespace {
					sp.Linux.Namespaces[i].Path = "/proc/1/ns/net"
				}
			}
		}},
		"proc-mount": {"Mounts[/hostproc]", func(sp *specs.Spec) {
			sp.Mounts = append(sp.Mounts, specs.Mount{Destination: "/hostproc", Type: "proc", Source: "proc"})
		}},
		"extra-mount": {"Mounts[/host]", func(sp *specs.Spec) {
			sp.Mounts = append(sp.Mounts, specs.Mount{Destination: "/host", Type: "bind", Source: "/", Options: []string{"rbind", "rw"}})
		}},
	} {
		t.Run(name, func(t *testing.T) {
			run := runName(t, te, "pfc")
			cfg, _ := writeConfig(t, fmt.Sprintf("run %q {\n %s\n}\nagent \"a\" {\n image = %q\n command = [\"sleep\", \"60\"]\n}\n", run, te.accept, testImage))
			destroyAtEnd(t, te, run)
			wk := &specRewriter{Engine: te.eng, t: t, te: te, weaken: c.weaken}
			_, err := (&runner.Runner{Engine: wk, Progress: testWriter{}, Program: program()}).Apply(ctx(t), cfg)
			if err == nil || !strings.Contains(err.Error(), "refusing to start") || !strings.Contains(err.Error(), c.setting+":") {
				t.Fatalf("apply of a container with a weakened runtime spec: %v (want a refusal naming %s)", err, c.setting)
			}
			if !wk.rewritten {
				t.Fatal("the runtime spec was not rewritten, so nothing was tested")
			}
			if ids := containerIDs(t, te, run); len(ids) != 0 {
				t.Errorf("the refused container was left: %v", ids)
			}
		})
	}
}

// podmanEngine is the Podman backend of the engine table with the test
// image built, for the tests only Podman runs. In CI a missing Podman
// fails (setupEngines), never skips.
func podmanEngine(t *testing.T) *testEngine {
	t.Helper()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	enginesOnce.Do(setupEngines)
	if enginesErr != nil {
		t.Fatalf("the Podman suite needs the engine table: %v", enginesErr)
	}
	for _, te := range engines {
		if te.name == "podman" {
			ensureImage(t, te)
			return te
		}
	}
	t.Skip("RUNNER_TEST_PODMAN_HOST is not set (eval \"$(scripts/podman-service.sh)\" and set it to $PODMAN_HOST)")
	return nil
}

// specRewriter is the real engine, except that after Create it rewrites
// the OCI spec Podman wrote for runc.
type specRewriter struct {
	engine.Engine
	t         *testing.T
	te        *testEngine
	weaken    func(*specs.Spec)
	rewritten bool
}

func (w *specRewriter) Create(ctx context.Context, s engine.Spec) (string, error) {
	id, err := w.Engine.Create(ctx, s)
	if err != nil {
		return id, err
	}
	sp := podmanSpec(w.t, w.te, id)
	w.weaken(sp)
	b, err := json.Marshal(sp)
	if err != nil {
		return id, err
	}
	path := podmanSpecPath(w.t, w.te, id)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return id, err
	}
	w.rewritten = true
	return id, nil
}
