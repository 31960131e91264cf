package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/engine/containerd"
	"github.com/runner-dev/runner/internal/engine/docker"
	"github.com/runner-dev/runner/internal/termsafe"
	"github.com/runner-dev/runner/internal/workspace"
	"github.com/runner-dev/runner/runner"
)

// cmdFetch is `runner fetch FILE [AGENT...]`.
func cmdFetch(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	var output string
	fs := g.newFlags("fetch", stderr)
	fs.StringVar(&output, "o", "text", "output format: text or json")
	lockFlag(g)(fs)
	pos, err := g.parseFlags(fs, "fetch", args, stderr)
	if err != nil {
		return err
	}
	if len(pos) < 1 {
		usageLine(stderr, "fetch")
		return exitError{2}
	}
	if output != "text" && output != "json" {
		return fmt.Errorf("-o %q: use text or json", output)
	}
	g.setupLog(stderr)
	cfg, files, err := loadConfig(g, pos[0], stderr)
	g.files = files
	if err != nil {
		return err
	}
	for _, a := range pos[1:] {
		if err := runner.CheckAgent(cfg, a); err != nil {
			return err
		}
	}
	eng, err := connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer eng.Close()
	reps, ferr := newRunner(g, eng, nil).Fetch(ctx, cfg, pos[1:])
	if output == "json" {
		if reps == nil {
			reps = []runner.FetchReport{}
		}
		enc := json.NewEncoder(termsafe.NewPlainWriter(stdout))
		enc.SetIndent("", "  ")
		if err := enc.Encode(reps); err != nil {
			return err
		}
		if ferr != nil {
			return exitError{1}
		}
		return nil
	}
	w := termsafe.NewPlainWriter(stdout)
	for _, r := range reps {
		if r.Error != "" {
			continue
		}
		refs := make([]string, 0, len(r.Heads))
		for ref := range r.Heads {
			refs = append(refs, ref)
		}
		sort.Strings(refs)
		branches := "1 branch"
		if len(refs) != 1 {
			branches = fmt.Sprintf("%d branches", len(refs))
		}
		fmt.Fprintf(w, "%s: %s into %s, %d changed\n", r.Agent, branches, r.Repo, len(r.Changed))
		changed := map[string]bool{}
		for _, c := range r.Changed {
			changed[c] = true
		}
		for _, ref := range refs {
			mark := " "
			if changed[ref] {
				mark = "*"
			}
			fmt.Fprintf(w, "  %s %s %s\n", mark, r.Heads[ref][:12], ref)
		}
	}
	return ferr
}

// cmdDiff is `runner diff FILE AGENT [--stat]`.
func cmdDiff(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	var stat bool
	cfg, rest, err := fileCommand(g, "diff", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&stat, "stat", false, "only the files changed and how much (git diff --stat)")
	}, 1, "")
	if err != nil {
		return err
	}
	eng, err := connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer eng.Close()
	out, err := newRunner(g, eng, nil).Diff(ctx, cfg, rest[0], stat)
	if err != nil {
		return err
	}
	_, err = io.WriteString(termsafe.NewPlainWriter(stdout), out)
	return err
}

// cmdFetchProxy is the hidden `runner __fetch-pack-proxy ENGINE ENDPOINT
// CONTAINER USER PATH MAX SERVICE`: the host's git fetch starts it through
// its ext:: transport; it runs git upload-pack in the agent's container
// and copies the streams, capped.
func cmdFetchProxy(ctx context.Context, _ *globals, args []string, _, stderr io.Writer) error {
	if len(args) != 7 {
		fmt.Fprintln(stderr, "runner: __fetch-pack-proxy is started by runner fetch, with ENGINE ENDPOINT CONTAINER USER PATH MAX SERVICE")
		return exitError{2}
	}
	name := args[0]
	args = args[1:]
	max, err := strconv.ParseInt(args[4], 10, 64)
	if err != nil || max <= 0 {
		fmt.Fprintf(stderr, "runner: bad cap %q\n", args[4])
		return exitError{2}
	}
	var eng engine.Engine
	switch name {
	case "docker", "podman": // Podman through its Docker-compatible API
		eng, err = docker.New(ctx, args[0])
	case "containerd":
		eng, err = containerd.New(ctx, args[0])
	default:
		err = fmt.Errorf("unknown engine %q", name)
	}
	if err != nil {
		fmt.Fprintln(stderr, "runner:", err)
		return exitError{1}
	}
	defer eng.Close()
	pctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	code, err := workspace.Proxy(pctx, workspace.ProxyOptions{
		Engine: eng, Container: args[1], User: args[2], Path: args[3], Max: max, Service: args[5],
		// The git protocol, byte for byte, to git (never a terminal): not
		// the filtered stdout commands get, which would hold back and
		// change bytes.
		In: os.Stdin, Out: os.Stdout, Err: stderr,
	})
	if err != nil {
		fmt.Fprintln(stderr, "runner: fetch refused:", err)
		return exitError{1}
	}
	if code != 0 {
		return exitError{code}
	}
	return nil
}

// writeWorkspaces is status's section on workspaces, under the table.
func writeWorkspaces(w io.Writer, rep runner.StatusReport, now time.Time) {
	first := true
	for _, a := range rep.Agents {
		ws := a.Workspace
		if ws == nil {
			continue
		}
		if first {
			fmt.Fprintln(w, "\nWorkspaces:")
			first = false
		}
		line := fmt.Sprintf("  %s: %s", a.Agent, termsafe.Line(ws.Branch))
		if ws.Ahead != nil {
			line += fmt.Sprintf(", %d ahead of %s", *ws.Ahead, ws.Base[:12])
		}
		if ws.Dirty != nil {
			if *ws.Dirty {
				line += ", dirty"
			} else {
				line += ", clean"
			}
		}
		line += ", last fetched " + ago(ws.Fetched, now)
		if ws.Error != "" {
			line += " (its git: " + termsafe.Line(ws.Error) + ")"
		}
		fmt.Fprintln(w, line)
	}
}
