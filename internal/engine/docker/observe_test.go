package docker

import (
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
)

// observe is what the fail-closed check sees: each field it reads must come
// from the engine's record, including the ones that must be off.
func TestObserve(t *testing.T) {
	pids := int64(64)
	c := container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{
			ID: "abc", Name: "/runner-demo-a",
			State: &container.State{Status: "running", ExitCode: 0, StartedAt: "2026-11-25T10:00:00.5Z"},
			HostConfig: &container.HostConfig{
				CapAdd: []string{"NET_ADMIN"}, CapDrop: []string{"ALL"},
				SecurityOpt:    []string{"no-new-privileges:true", `seccomp={"defaultAction":"SCMP_ACT_ERRNO"}`},
				ReadonlyRootfs: true, Tmpfs: map[string]string{"/tmp": "size=1m"},
				Privileged: true, PidMode: "host", IpcMode: "private", UTSMode: "host",
				UsernsMode: "host", CgroupnsMode: "private", NetworkMode: "none", Runtime: "runsc",
				Binds:       []string{"/var/run/docker.sock:/sock"},
				MaskedPaths: []string{"/proc/kcore"}, ReadonlyPaths: []string{"/proc/sys"},
				Resources: container.Resources{Memory: 1 << 20, MemorySwap: 2 << 20, NanoCPUs: 5e8, PidsLimit: &pids, Devices: []container.DeviceMapping{{PathOnHost: "/dev/kvm"}}},
			},
		},
		Config: &container.Config{Image: "img", User: "1000:1000", Labels: map[string]string{"k": "v"}, Entrypoint: []string{"/e"}, Cmd: []string{"c"}},
		Mounts: []container.MountPoint{
			{Type: mount.TypeBind, Source: "/var/run/docker.sock", Destination: "/sock", RW: true},
			{Type: mount.TypeBind, Source: "/src", Destination: "/work", RW: false},
			{Type: mount.TypeTmpfs, Destination: "/tmp"},
			{Type: mount.TypeVolume, Source: "/var/lib/docker/volumes/x", Destination: "/data", RW: true},
		},
	}
	o := observe(c)
	if o.Name != "runner-demo-a" || o.Image != "img" || o.User != "1000:1000" || o.State != "running" || o.StartedAt.IsZero() {
		t.Errorf("identity fields: %+v", o)
	}
	if !o.NoNewPrivileges || o.SeccompProfile != `{"defaultAction":"SCMP_ACT_ERRNO"}` {
		t.Errorf("security options: nnp=%v seccomp=%q", o.NoNewPrivileges, o.SeccompProfile)
	}
	if len(o.CapAdd) != 1 || !o.Privileged || o.PidMode != "host" || o.UTSMode != "host" || o.UsernsMode != "host" || o.Devices != 1 {
		t.Errorf("settings that must be off are not reported: %+v", o)
	}
	if len(o.MaskedPaths) != 1 || o.MaskedPaths[0] != "/proc/kcore" || len(o.ReadonlyPaths) != 1 || o.ReadonlyPaths[0] != "/proc/sys" {
		t.Errorf("masked %v, read-only %v", o.MaskedPaths, o.ReadonlyPaths)
	}
	if o.Runtime != "runsc" {
		t.Errorf("Runtime = %q, want the HostConfig's runsc", o.Runtime)
	}
	if o.Memory != 1<<20 || o.MemorySwap != 2<<20 || o.NanoCPUs != 5e8 || o.PidsLimit != 64 {
		t.Errorf("limits: %+v", o)
	}
	// The old-style bind, the typed bind and the volume are all mounts the
	// check must see; the tmpfs is compared through Tmpfs.
	targets := map[string]bool{}
	for _, m := range o.Mounts {
		targets[m.Target] = true
	}
	if len(o.Mounts) != 3 || !targets["/sock"] || !targets["/work"] || !targets["/data"] {
		t.Errorf("mounts: %+v", o.Mounts)
	}
	// Podman lists bind mounts as Binds with options.
	c.HostConfig.Binds = []string{"/src:/ro:ro,rprivate,rbind", "/src:/rw:rw,rprivate,rbind", "/src:/roo:rootless"}
	c.Mounts = nil
	ro := map[string]bool{}
	for _, m := range observe(c).Mounts {
		ro[m.Target] = m.ReadOnly
	}
	if !ro["/ro"] || ro["/rw"] || ro["/roo"] {
		t.Errorf("bind options read as read-only: %v", ro)
	}
}

func TestObserveNoNewPrivilegesForms(t *testing.T) {
	for opt, want := range map[string]bool{
		"no-new-privileges": true, "no-new-privileges:true": true, "no-new-privileges=true": true,
		"no-new-privileges:false": false, "no-new-privileges=false": false,
	} {
		c := container.InspectResponse{ContainerJSONBase: &container.ContainerJSONBase{HostConfig: &container.HostConfig{SecurityOpt: []string{opt}}}}
		if got := observe(c).NoNewPrivileges; got != want {
			t.Errorf("%q: NoNewPrivileges = %v, want %v", opt, got, want)
		}
	}
}

func TestRemapRoot(t *testing.T) {
	for in, want := range map[string]string{
		"/var/lib/docker/100000.100000": "100000.100000",
		"/data/docker/231072.231072":    "231072.231072",
		"/var/lib/docker":               "",
		"/var/lib/docker.old":           "",
		"/var/lib/docker/1.x":           "",
	} {
		if got := remapRoot(in); got != want {
			t.Errorf("remapRoot(%q) = %q, want %q", in, got, want)
		}
	}
}
