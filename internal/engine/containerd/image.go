package containerd

import (
	"context"
	"fmt"
	"io"

	"github.com/containerd/containerd/v2/client"

	"github.com/runner-dev/runner/internal/engine/docker"
)

// BuildImage builds with the machine's Docker (containerd has no builder;
// the default image needs no registry either way), streams the result as
// `docker save` does straight into containerd's image store, and unpacks
// it. The Docker copy stays: rebuilding is then cached there.
func (e *Engine) BuildImage(ctx context.Context, tarCtx io.Reader, ref string, labels map[string]string, progress io.Writer) error {
	d, err := docker.New(ctx, "")
	if err != nil {
		return fmt.Errorf("containerd has no image builder, so runner builds with Docker and imports: %w", err)
	}
	defer d.Close()
	if err := d.BuildImage(ctx, tarCtx, ref, labels, progress); err != nil {
		return err
	}
	rc, err := d.SaveImage(ctx, ref)
	if err != nil {
		return err
	}
	defer rc.Close()
	if progress != nil {
		fmt.Fprintf(progress, "Importing %s into %s (namespace %s)...\n", ref, e.Describe(), Namespace)
	}
	imgs, err := e.cli.Import(ctx, rc)
	if err != nil {
		return e.wrap("import "+ref, err)
	}
	for _, im := range imgs {
		if im.Name != ref {
			continue
		}
		if err := client.NewImage(e.cli, im).Unpack(ctx, snapshotter); err != nil {
			return e.wrap("unpack "+ref, err)
		}
		return nil
	}
	return fmt.Errorf("containerd import %s: the archive Docker saved did not name that image", ref)
}
