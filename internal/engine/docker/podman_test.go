package docker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/api/types"

	"github.com/runner-dev/runner/internal/engine"
)

func TestDetectFlavor(t *testing.T) {
	docker := types.Version{Components: []types.ComponentVersion{{Name: "Engine"}, {Name: "containerd"}}}
	podman := types.Version{Components: []types.ComponentVersion{{Name: "Podman Engine"}, {Name: "Conmon"}}}
	if detectFlavor(docker) != flavorDocker || detectFlavor(podman) != flavorPodman || detectFlavor(types.Version{}) != flavorDocker {
		t.Error("flavor detection from the version's components")
	}
}

// TestPodmanFacts: rootless Podman on cgroup v1 ignores every limit (it only
// warns), whatever its compatible /info says: they must be reported as not
// enforceable, so apply needs accept_unenforced for each.
func TestPodmanFacts(t *testing.T) {
	var pi podmanInfo
	pi.Host.Security.Rootless = true
	pi.Host.CgroupVersion = "v1"
	pi.Host.CgroupManager = "cgroupfs"
	pi.Host.OCIRuntime.Name = "crun"
	in := engine.Info{Name: "docker", MemoryLimit: true, PidsLimit: true, CPULimit: true, Runtimes: []string{"crun", "kata", "runsc"}, DefaultRuntime: "crun"}
	podmanFacts(&in, pi)
	if in.Name != "podman" || !in.Rootless || in.CgroupVersion != "1" || in.MemoryLimit || in.PidsLimit || in.CPULimit {
		t.Errorf("rootless cgroup v1: %+v", in)
	}
	if len(in.Runtimes) != 1 || in.Runtimes[0] != "crun" {
		t.Errorf("only the runtime Podman uses is offered: %v", in.Runtimes)
	}
	pi.Host.CgroupVersion = "v2"
	in = engine.Info{MemoryLimit: true, PidsLimit: true, CPULimit: true}
	podmanFacts(&in, pi)
	if !in.MemoryLimit || !in.PidsLimit || !in.CPULimit || in.CgroupVersion != "2" {
		t.Errorf("cgroup v2: limits as the compatible info says: %+v", in)
	}
}

func TestPodmanTmpfs(t *testing.T) {
	p := &Engine{flavor: flavorPodman}
	got := p.tmpfsOptions(map[string]string{"/home/agent": "rw,size=1,uid=40000,gid=40001,mode=0700", "/tmp": "rw,mode=1777"})
	if got["/home/agent"] != "rw,size=1,mode=0700,U" || got["/tmp"] != "rw,mode=1777" {
		t.Errorf("podman tmpfs options: %v", got)
	}
	d := &Engine{}
	if d.tmpfsOptions(map[string]string{"/x": "uid=1"})["/x"] != "uid=1" {
		t.Error("Docker's options must pass unchanged")
	}
}

// TestSeccompFile: Podman gets a path, named by the profile's hash, in a
// directory only this user may write.
func TestSeccompFile(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	profile := `{"defaultAction":"SCMP_ACT_ERRNO"}`
	path, err := seccompFile(profile)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := seccompFile(profile); err != nil || again != path {
		t.Fatalf("second write: %q %v", again, err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != profile {
		t.Errorf("%s holds %q, %v", path, b, err)
	}
	if err := os.Chmod(filepath.Dir(path), 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := seccompFile(profile); err == nil || !strings.Contains(err.Error(), "only it can write") {
		t.Errorf("a directory others may write must be refused: %v", err)
	}
}
