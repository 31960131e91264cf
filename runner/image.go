package runner

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/image"
)

// ImageOptions says what BuildImage builds.
type ImageOptions struct {
	Ref      string // e.g. localhost/runner-agent:latest
	AgentBin string // static runner-agent binary to put in the image
	Force    bool   // rebuild even when an identical image exists
	Progress io.Writer
}

// digestLabel carries the digest of the image's content, so an identical
// image is not built twice.
const digestLabel = "runner.image-digest"

// BuildImage builds the default agent image from files on this machine; it
// needs no registry.
func BuildImage(ctx context.Context, eng engine.Engine, o ImageOptions) error {
	progress := o.Progress
	if progress == nil {
		progress = io.Discard
	}
	tmp, err := os.CreateTemp("", "runner-image-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	fmt.Fprintf(progress, "Collecting the image's files from this machine...\n")
	digest, err := image.Context(tmp, o.AgentBin, progress)
	if err != nil {
		return fmt.Errorf("assembling the image: %w", err)
	}
	if !o.Force {
		img, found, err := eng.Image(ctx, o.Ref)
		if err != nil {
			return err
		}
		if found && img.Labels[digestLabel] == digest {
			fmt.Fprintf(progress, "Image %s is up to date (digest %s).\n", o.Ref, digest)
			return nil
		}
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	fmt.Fprintf(progress, "Building %s on %s...\n", o.Ref, eng.Describe())
	if err := eng.BuildImage(ctx, tmp, o.Ref, map[string]string{digestLabel: digest}, progress); err != nil {
		return err
	}
	fmt.Fprintf(progress, "Built %s (digest %s).\n", o.Ref, digest)
	return nil
}
