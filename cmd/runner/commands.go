package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/hcl/v2"
	"golang.org/x/term"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/engine/containerd"
	"github.com/runner-dev/runner/internal/engine/docker"
	"github.com/runner-dev/runner/internal/termsafe"
	"github.com/runner-dev/runner/internal/workspace"
	"github.com/runner-dev/runner/runner"
)

// fileCommand parses the flags of a command acting on a config file, loads
// and validates the file, and returns the remaining positional arguments.
// (The usage line comes from the command table; argsUsage is kept for the
// callers that still pass it.)
func fileCommand(g *globals, name string, args []string, stderr io.Writer, extra func(*flag.FlagSet), nargs int, _ string) (*config.Config, []string, error) {
	fs := g.newFlags(name, stderr)
	if extra != nil {
		extra(fs)
	}
	pos, err := g.parseFlags(fs, name, args, stderr)
	if err != nil {
		return nil, nil, err
	}
	if len(pos) != 1+nargs && !(g.lastOptional && len(pos) == nargs) {
		usageLine(stderr, name)
		return nil, nil, exitError{2}
	}
	g.setupLog(stderr)
	cfg, files, err := loadConfig(g, pos[0], stderr)
	g.files = files
	if err != nil {
		return nil, nil, err
	}
	// A command whose table row says FILE AGENT gets a known agent, or the
	// nearest name, before anything reaches the engine.
	if c, _ := lookup(name); strings.HasPrefix(c.args, "FILE AGENT") && !agentGlob(name, pos[1]) {
		if err := runner.CheckAgent(cfg, pos[1]); err != nil {
			return nil, nil, err
		}
	}
	return cfg, pos[1:], nil
}

// mountsSources are the engine commands that create containers, and so
// mount sources; the others need only the run.
var mountsSources = map[string]bool{"plan": true, "apply": true}

// checkSources is the mount-source stage for the commands that mount them
// (validate, plan, apply, run): it prints its diagnostics as Load's are
// printed and fails on errors. Plan and Apply check again when they use the
// sources; the other commands need only the run, so they never check.
func checkSources(g *globals, cfg *config.Config, stderr io.Writer) error {
	srcs := config.CheckSources(cfg)
	diags := srcs.Diagnostics()
	if !diags.HasErrors() {
		// A workspace's repository and ref, read in the operator's
		// repository only.
		_, wd := workspace.Check(context.Background(), cfg, srcs)
		diags = append(diags, wd...)
	}
	diags = append(diags, secretDiagnostics(cfg)...)
	g.writeDiags(stderr, diags)
	if diags.HasErrors() {
		return exitError{1}
	}
	return nil
}

// engineCommand is fileCommand plus a connection to the run's engine; the
// caller closes it. For the commands that mount sources the mount-source
// stage runs first, so a refused source is reported before the engine is
// touched.
func engineCommand(ctx context.Context, g *globals, name string, args []string, stderr io.Writer, extra func(*flag.FlagSet), nargs int, argsUsage string) (*config.Config, []string, engine.Engine, error) {
	cfg, rest, err := fileCommand(g, name, args, stderr, extra, nargs, argsUsage)
	if err == nil && mountsSources[name] {
		err = checkSources(g, cfg, stderr)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	eng, err := connect(ctx, cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	return cfg, rest, eng, nil
}

// loadConfig prints diagnostics as Terraform does and fails on errors.
// With -json they are kept for the command's JSON document instead.
func loadConfig(g *globals, path string, stderr io.Writer) (*config.Config, map[string]*hcl.File, error) {
	l := config.NewLoader()
	l.VarFiles = *g.varFiles.files
	cfg, diags := l.Load(path, g.vars)
	g.files = l.Files()
	g.writeDiags(stderr, diags)
	if diags.HasErrors() {
		return nil, l.Files(), exitError{1}
	}
	return cfg, l.Files(), nil
}

// connect opens the engine the run names.
func connect(ctx context.Context, cfg *config.Config) (engine.Engine, error) {
	name := "docker"
	if cfg != nil {
		name = cfg.Run.Engine
	}
	return connectNamed(ctx, name)
}

// engineFlagUsage is the --engine flag of commands that take no agents file.
const engineFlagUsage = `engine to use: "docker" (also rootless Docker), "containerd" (CONTAINERD_ADDRESS) or "podman" (CONTAINER_HOST, else the user's rootless socket)`

// connectPodman opens Podman's Docker-compatible API, and refuses an
// endpoint that answers as Docker: the run asked for Podman's behaviour.
func connectPodman(ctx context.Context) (engine.Engine, error) {
	host := docker.PodmanHost()
	eng, err := docker.New(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("%w (engine = \"podman\": start the service with `podman system service --time=0 &`, or set CONTAINER_HOST)", err)
	}
	if !eng.IsPodman() {
		eng.Close()
		return nil, fmt.Errorf("engine = \"podman\" but %s answers as Docker: point CONTAINER_HOST at Podman's socket, or use engine = \"docker\"", host)
	}
	return eng, nil
}

// connectNamed opens an engine by name.
func connectNamed(ctx context.Context, name string) (engine.Engine, error) {
	switch name {
	case "docker", "":
		return docker.New(ctx, "")
	case "containerd":
		return containerd.New(ctx, "")
	case "podman":
		return connectPodman(ctx)
	default:
		return nil, fmt.Errorf("engine %q is not implemented yet; use engine = \"docker\"", name)
	}
}

func newRunner(g *globals, eng engine.Engine, progress io.Writer) *runner.Runner {
	return &runner.Runner{Engine: eng, Log: g.log, Progress: progress, LockTimeout: g.lockTimeout}
}

func cmdStatus(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	var output string
	t, err := runTarget(ctx, g, "status", args, stderr, both(jsonFlag(g), func(fs *flag.FlagSet) {
		fs.StringVar(&output, "o", "table", "output format: table, wide (adds image and limits) or json")
	}), 0)
	if err != nil {
		return jsonConfigError(g, stdout, err)
	}
	defer t.close()
	if g.json {
		output = "json"
	}
	if output != "table" && output != "wide" && output != "json" {
		return fmt.Errorf("-o %q: use table, wide or json", output)
	}
	rep, err := newRunner(g, t.eng, nil).Status(ctx, t.cfg)
	if err != nil {
		return err
	}
	if output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	writeStatus(stdout, rep, output == "wide", time.Now())
	return nil
}

// uidCell is the UID column: the container's uid, the host uid when a user
// namespace maps it elsewhere, and whether the file chose it.
func uidCell(ids *runner.AgentIDs) string {
	if ids == nil {
		return "-"
	}
	s := strconv.FormatUint(uint64(ids.UID), 10)
	if ids.HostUID != 0 && ids.HostUID != ids.UID {
		s += fmt.Sprintf(" (host %d)", ids.HostUID)
	}
	if ids.Source == "config" {
		s += " (from file)"
	}
	return s
}

// writeStatus prints the status table; wide adds the image and limits.
func writeStatus(w io.Writer, rep runner.StatusReport, wide bool, now time.Time) {
	mode := "rootful (container uid 0 would be host uid 0; agents never run as uid 0)"
	switch {
	case rep.Rootless:
		mode = "rootless"
	case rep.UserNS:
		mode = "user-namespaced"
	}
	fmt.Fprintf(w, "Run %q on %s, %s\n", rep.Run, rep.Engine, mode)
	if rep.IDMapping != "" {
		fmt.Fprintf(w, "Uids: %s\n", rep.IDMapping)
	}
	if rep.Relay != "running" && slices.ContainsFunc(rep.Agents, func(a runner.AgentStatus) bool { return a.ID != "" }) {
		fmt.Fprintf(w, "Relay: %s\n", rep.Relay)
	}
	if rep.OperatorInbox > 0 {
		fmt.Fprintf(w, "Inbox: %s from agents for the operator: read them with `runner inbox FILE`\n", plural(rep.OperatorInbox, "message"))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := "AGENT\tCONTAINER\tUID\tSTATE\tPROCESS\tRESTARTS\tIDLE\tLAST IN\tLAST OUT\tCHECK-INS\tUPTIME\tSECURITY"
	if wide {
		head += "\tIMAGE\tLIMITS"
	}
	fmt.Fprintln(tw, head)
	for _, a := range rep.Agents {
		restarts, idle := "-", "-"
		if a.Process != "" {
			restarts = strconv.Itoa(a.Restarts)
		}
		if a.IdleS != nil {
			idle = shortDuration(time.Duration(*a.IdleS) * time.Second)
		}
		lastIn := ago(a.LastIn, now)
		if a.Queued > 0 {
			lastIn += fmt.Sprintf(" (%d queued)", a.Queued)
		}
		checkins := "-"
		if a.CheckinsPending > 0 {
			checkins = strconv.Itoa(a.CheckinsPending)
			if a.NextCheckin != nil {
				checkins += ", next in " + shortDuration(max(a.NextCheckin.Sub(now), 0))
			}
		}
		state := a.State
		if a.Health != "" {
			state += " (" + a.Health + ")" // as docker ps shows it
		}
		row := []string{a.Agent, dash(a.ID), uidCell(a.IDs), state, dash(a.Process), restarts, idle, lastIn, ago(a.LastOut, now), checkins, dash(a.Uptime), a.Security}
		if wide {
			row = append(row, dash(a.Image), dash(a.Limits))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	tw.Flush()
	for _, a := range rep.Agents {
		if a.Egress != nil {
			fmt.Fprintf(w, "  %s: egress: %s\n", a.Agent, a.Egress.Line)
		}
	}
	for _, a := range rep.Agents {
		for _, v := range a.Violations {
			fmt.Fprintf(w, "  %s: %s\n", a.Agent, v)
		}
	}
	writeWorkspaces(w, rep, now)
}

// ago is "12s ago", or "-" for no time.
func ago(t *time.Time, now time.Time) string {
	if t == nil {
		return "-"
	}
	return shortDuration(max(now.Sub(*t), 0)) + " ago"
}

// shortDuration is d in at most two units, rounded down: 42s, 3m12s, 4m,
// 2h5m, 3d4h.
func shortDuration(d time.Duration) string {
	s := int64(d / time.Second)
	two := func(a int64, ua string, b int64, ub string) string {
		if b == 0 {
			return fmt.Sprintf("%d%s", a, ua)
		}
		return fmt.Sprintf("%d%s%d%s", a, ua, b, ub)
	}
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return two(s/60, "m", s%60, "s")
	case s < 48*3600:
		return two(s/3600, "h", s%3600/60, "m")
	}
	return two(s/86400, "d", s%86400/3600, "h")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func cmdCapture(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	var (
		lines int
		raw   bool
	)
	t, err := runTarget(ctx, g, "capture", args, stderr, func(fs *flag.FlagSet) {
		fs.IntVar(&lines, "lines", 0, "also print up to N lines of scrollback above the screen")
		fs.BoolVar(&raw, "raw", false, "keep the pane's colours as escape sequences, unfiltered (they act on your terminal)")
	}, 1)
	if err != nil {
		return err
	}
	defer t.close()
	if lines < 0 {
		return fmt.Errorf("--lines %d: use a number >= 0", lines)
	}
	cfg, rest, eng := t.cfg, t.rest, t.eng
	if raw {
		warnRaw(stdout, stderr, "capture")
		out, err := newRunner(g, eng, nil).CaptureRaw(ctx, cfg, rest[0], lines)
		if err != nil {
			return err
		}
		_, err = io.WriteString(stdout, out)
		return err
	}
	out, err := newRunner(g, eng, nil).Capture(ctx, cfg, rest[0], lines)
	if err != nil {
		return err
	}
	_, err = io.WriteString(termsafe.NewPlainWriter(stdout), out)
	return err
}

// warnRaw says on stderr, when stdout is a terminal, that raw bytes from a
// container are about to act on it.
func warnRaw(stdout, stderr io.Writer, cmd string) {
	if f, ok := stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(stderr, "Warning: %s --raw prints the agent's bytes unfiltered: escape sequences in them act on this terminal (title, clipboard, links, answers typed back). Redirect to a file, or leave out --raw.\n", cmd)
	}
}

func cmdDoctor(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	fs := g.newFlags("doctor", stderr)
	engName := fs.String("engine", "docker", engineFlagUsage)
	pos, err := g.parseFlags(fs, "doctor", args, stderr)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		usageLine(stderr, "doctor")
		return exitError{2}
	}
	g.setupLog(stderr)
	eng, err := connectNamed(ctx, *engName)
	if err != nil {
		fmt.Fprintf(stdout, "✗ engine: %v\n", err)
		return exitError{1}
	}
	defer eng.Close()
	info, err := eng.Info(ctx)
	if err != nil {
		fmt.Fprintf(stdout, "✗ engine: %v\n", err)
		return exitError{1}
	}
	rep := runner.Doctor(info)
	rep.Checks = append(rep.Checks, runner.DoctorIDs(ctx, eng, info)...)
	rep.Checks = append(rep.Checks, runner.DoctorEgress(ctx))
	for _, c := range rep.Checks {
		fmt.Fprintf(stdout, "%s %-10s %s\n", c.Mark(), c.Name, c.Detail)
	}
	if !rep.Safe() {
		fmt.Fprintln(stdout, "\nThis engine is not safe for agents: fix the items marked ✗.")
		return exitError{1}
	}
	return nil
}

func cmdImage(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	fs := g.newFlags("image", stderr)
	tag := fs.String("tag", config.DefaultImage, "image reference to build")
	agentBin := fs.String("agent-bin", "", "static runner-agent binary to put in the image (default: runner-agent next to this runner)")
	force := fs.Bool("force", false, "rebuild even if an identical image exists")
	engName := fs.String("engine", "docker", engineFlagUsage+"; containerd's is built with Docker and imported")
	pos, err := g.parseFlags(fs, "image", args, stderr)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] != "build" {
		usageLine(stderr, "image")
		return exitError{2}
	}
	g.setupLog(stderr)
	bin := *agentBin
	if bin == "" {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("cannot find runner-agent: %w; pass --agent-bin", err)
		}
		bin = filepath.Join(filepath.Dir(self), "runner-agent")
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("runner-agent binary %s: %w; build it with `make build` or pass --agent-bin PATH", bin, err)
	}
	eng, err := connectNamed(ctx, *engName)
	if err != nil {
		return err
	}
	defer eng.Close()
	return runner.BuildImage(ctx, eng, runner.ImageOptions{Ref: *tag, AgentBin: bin, Force: *force, Progress: stdout})
}
