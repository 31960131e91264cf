package docker

import (
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"

	"github.com/runner-dev/runner/internal/engine"
)

// listMounts are a listed container's bind mounts in engine terms. Volumes
// and tmpfs are left out: they are no host path a mount source could share.
func listMounts(ms []container.MountPoint) []engine.Mount {
	var out []engine.Mount
	for _, m := range ms {
		if m.Type == mount.TypeBind {
			out = append(out, engine.Mount{Source: m.Source, Target: m.Destination, ReadOnly: !m.RW})
		}
	}
	return out
}
