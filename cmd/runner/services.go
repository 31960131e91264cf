package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/engine/containerd"
	"github.com/runner-dev/runner/internal/engine/docker"
	"github.com/runner-dev/runner/runner"
)

// cmdServices is `runner services serve STATE_ROOT RUN`: the run's host
// services (relay, transcript recorder, egress proxy), supervised: serve
// keeps a `runner services child STATE_ROOT RUN` running, which serves
// them. apply starts it detached, and so does any command that finds it
// gone; people do not need to, so it is not in the usage. Its stderr is
// the log file apply opened, reached through main's termsafe filter like
// every command's.
func cmdServices(ctx context.Context, g *globals, args []string, _, stderr io.Writer) error {
	if len(args) != 3 || (args[0] != "serve" && args[0] != "child") {
		fmt.Fprintln(stderr, "Usage: runner services serve STATE_ROOT RUN   (started by `runner apply`)")
		return exitError{2}
	}
	// Its log is where component failures and stream starts are told:
	// info and up.
	log := hclog.New(&hclog.LoggerOptions{Name: "services", Level: hclog.Info, Output: stderr})
	if l := hclog.LevelFromString(g.logLevel); g.logLevel != "warn" && l != hclog.NoLevel {
		log.SetLevel(l)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	serve := runner.ServeServicesChild
	var child []string
	if args[0] == "serve" {
		serve = runner.SuperviseServices
		child = []string{self, "-log-level", g.logLevel, "services", "child", args[1], args[2]}
	}
	return serve(ctx, args[1], args[2], runner.ServicesOptions{
		Log:       log,
		ChildArgv: child,
		Program:   []string{self},
		Engine: func(ctx context.Context, endpoint string) (engine.Engine, error) {
			if addr, ok := strings.CutPrefix(endpoint, runner.ContainerdEndpoint); ok {
				return containerd.New(ctx, addr)
			}
			return docker.New(ctx, endpoint)
		},
	})
}
