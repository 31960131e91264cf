package docker

import (
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"

	"github.com/runner-dev/runner/internal/engine"
)

func TestListMounts(t *testing.T) {
	got := listMounts([]container.MountPoint{
		{Type: mount.TypeBind, Source: "/w", Destination: "/ws", RW: true},
		{Type: mount.TypeBind, Source: "/r", Destination: "/ro", RW: false},
		{Type: mount.TypeVolume, Source: "/var/lib/docker/volumes/v/_data", Destination: "/v", RW: true},
		{Type: mount.TypeTmpfs, Destination: "/tmp", RW: true},
	})
	want := []engine.Mount{{Source: "/w", Target: "/ws"}, {Source: "/r", Target: "/ro", ReadOnly: true}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("listMounts = %+v, want %+v", got, want)
	}
}
