package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

// version is set at link time (make build: -X main.version=...); without
// it the module version from the build info is used (`go install ...@v1.2.0`).
var version = ""

// commit is the source revision, set at link time when the build info has
// none (builds with -buildvcs=false, or outside a checkout).
var commit = ""

// buildVersion is what `runner version` prints: the version, the commit and
// whether the tree had changes (when the build recorded them), and the Go
// toolchain and platform.
func buildVersion(info *debug.BuildInfo, ok bool) string {
	v := version
	rev, modified := commit, ""
	goVersion := runtime.Version()
	if ok {
		if v == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v = info.Main.Version
		}
		goVersion = info.GoVersion
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				if rev == "" {
					rev = s.Value
				}
			case "vcs.modified":
				modified = s.Value
			}
		}
	}
	if v == "" {
		v = "dev"
	}
	s := "runner " + v
	if rev != "" {
		dirty := strings.HasSuffix(rev, "-dirty")
		rev = strings.TrimSuffix(rev, "-dirty")
		if len(rev) > 12 {
			rev = rev[:12]
		}
		s += " (commit " + rev
		if modified == "true" || dirty {
			s += ", with local changes"
		}
		s += ")"
	}
	return fmt.Sprintf("%s\n%s %s/%s\n", s, goVersion, runtime.GOOS, runtime.GOARCH)
}

func cmdVersion(_ context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	fs := g.newFlags("version", stderr)
	pos, err := g.parseFlags(fs, "version", args, stderr)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		usageLine(stderr, "version")
		return exitError{2}
	}
	_, err = io.WriteString(stdout, buildVersion(debug.ReadBuildInfo()))
	return err
}
