package runner_test

// The engine suite: every test here runs against the real Docker Engine on
// the machine, and a second time against a rootless dockerd when
// RUNNER_TEST_ROOTLESS_DOCKER_HOST points at one (.ci/run starts it). The
// conformance tests (forEveryBackend) also run on every other backend that
// is configured: the machine's Docker with gVisor when
// RUNNER_TEST_GVISOR_RUNTIME names its runtime (runsc), containerd with a
// user namespace per run at RUNNER_TEST_CONTAINERD_ADDRESS, and rootless
// Podman's service at RUNNER_TEST_PODMAN_HOST. In CI
// (CI=true) every backend is required: a missing one fails, never skips.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	ctrd "github.com/containerd/containerd/v2/client"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/engine/docker"
	"github.com/runner-dev/runner/runner"
)

// testImage is a tag of its own so tests never disturb a user's default
// image, and this test process's own, so that a suite run at the same time
// from another checkout cannot swap it for its build of runner-agent.
// TestMain removes it.
var testImage = fmt.Sprintf("localhost/runner-agent:test-%d", os.Getpid())

// testCleanups run after every test (suites other than the Docker one
// register what they leave, e.g. an image in containerd).
var testCleanups []func()

var (
	bins     string // dir with runner, runner-agent and testprobe, mode 0755
	buildErr error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "runner-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Readable by the rootless daemon's user, which bind-mounts testprobe.
	os.Chmod(dir, 0o755)
	bins = dir
	buildErr = buildBinaries(dir)
	if buildErr == nil {
		buildErr = stateRoot()
	}
	code := m.Run()
	for _, f := range testCleanups {
		f()
	}
	for _, te := range engines {
		if te.raw != nil {
			te.raw.ImageRemove(context.Background(), testImage, image.RemoveOptions{})
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// stateRoot points RUNNER_STATE_DIR (for this process and the CLI it runs)
// at a fresh directory. With a rootless engine it belongs to that daemon's
// user, as it would when that user runs runner: the daemon must reach the
// relay directory and credentials it bind-mounts.
func stateRoot() error {
	dir, err := os.MkdirTemp("", "runner-e2e-state-")
	if err != nil {
		return err
	}
	if h := os.Getenv("RUNNER_TEST_ROOTLESS_DOCKER_HOST"); strings.HasPrefix(h, "unix://") {
		fi, err := os.Stat(strings.TrimPrefix(h, "unix://"))
		if err != nil {
			return fmt.Errorf("rootless socket: %w", err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if err := os.Chown(dir, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
	}
	return os.Setenv("RUNNER_STATE_DIR", dir)
}

func buildBinaries(dir string) error {
	root, err := filepath.Abs("..")
	if err != nil {
		return err
	}
	for name, pkg := range map[string]string{
		"runner":       "./cmd/runner",
		"runner-agent": "./cmd/runner-agent",
		"testprobe":    "./internal/testprobe",
	} {
		args := []string{"build", "-trimpath", "-o", filepath.Join(dir, name)}
		if name == "runner" {
			// runnertest: the egress proxy resolves RUNNER_TEST_EGRESS_HOSTS
			// (runner/egresstesthosts_runnertest.go); no shipped build has it.
			args = append(args, "-tags", "runnertest")
		}
		cmd := exec.Command("go", append(args, pkg)...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return nil
}

// testEngine is one backend the suite runs against: an engine, and how
// runs on it are configured.
type testEngine struct {
	name string // "docker", "rootless", "gvisor", "containerd", "podman"
	host string // DOCKER_HOST value (containerd: its address); "" = the environment's
	eng  engine.Engine
	raw  *client.Client // the plain Docker client, for checks from outside
	info engine.Info
	// accept is the text every test puts in its run blocks: the
	// accept_unenforced line for limits the engine cannot enforce, and
	// the backend's runtime line (runtime = "runsc" on gVisor).
	accept string
	// runtime is the OCI runtime the backend's runs ask for ("" = the
	// engine's default); conformanceOnly backends run only the
	// conformance tests (forEveryBackend), to keep CI's time bounded.
	runtime         string
	conformanceOnly bool
	// env is what the runner CLI needs in its environment to reach this
	// backend (DOCKER_HOST, CONTAINERD_ADDRESS).
	env []string
	// ctrd is containerd's own client (the containerd backend only): its
	// checks from outside read the stored OCI spec, as raw does Docker's
	// inspect.
	ctrd *ctrd.Client
}

var (
	enginesOnce sync.Once
	engines     []*testEngine
	enginesErr  error
	imageOnce   sync.Map // engine name -> *sync.Once
	imageErr    sync.Map
)

func setupEngines() {
	type target struct {
		name, host, runtime string
		conformanceOnly     bool
		kind                string // "docker", "containerd" or "podman"
	}
	targets := []target{{name: "docker", kind: "docker"}}
	ci := os.Getenv("CI") == "true"
	if h := os.Getenv("RUNNER_TEST_ROOTLESS_DOCKER_HOST"); h != "" {
		targets = append(targets, target{name: "rootless", host: h, kind: "docker"})
	} else if ci {
		enginesErr = fmt.Errorf("CI=true but RUNNER_TEST_ROOTLESS_DOCKER_HOST is not set: .ci/run must start the rootless dockerd (scripts/rootless-docker.sh)")
		return
	}
	if rt := os.Getenv("RUNNER_TEST_GVISOR_RUNTIME"); rt != "" {
		targets = append(targets, target{name: "gvisor", runtime: rt, conformanceOnly: true, kind: "docker"})
	} else if ci {
		enginesErr = fmt.Errorf("CI=true but RUNNER_TEST_GVISOR_RUNTIME is not set: .ci/run must register gVisor with the machine's dockerd (scripts/gvisor-docker.sh) and set it to runsc")
		return
	}
	if a := os.Getenv("RUNNER_TEST_CONTAINERD_ADDRESS"); a != "" {
		targets = append(targets, target{name: "containerd", host: a, conformanceOnly: true, kind: "containerd"})
	} else if ci {
		enginesErr = fmt.Errorf("CI=true but RUNNER_TEST_CONTAINERD_ADDRESS is not set: .ci/run must start containerd (scripts/containerd.sh)")
		return
	}
	if h := os.Getenv("RUNNER_TEST_PODMAN_HOST"); h != "" {
		targets = append(targets, target{name: "podman", host: h, conformanceOnly: true, kind: "podman"})
	} else if ci {
		enginesErr = fmt.Errorf("CI=true but RUNNER_TEST_PODMAN_HOST is not set: .ci/run must start rootless Podman's service (scripts/podman-service.sh)")
		return
	}
	ctx := context.Background()
	for _, tg := range targets {
		te := &testEngine{name: tg.name, host: tg.host, runtime: tg.runtime, conformanceOnly: tg.conformanceOnly}
		var err error
		switch tg.kind {
		case "containerd":
			err = te.connectContainerd(ctx)
		case "podman":
			err = te.connectPodman(ctx)
		default:
			err = te.connectDocker(ctx)
		}
		if err != nil {
			enginesErr = fmt.Errorf("engine %s: %w", tg.name, err)
			return
		}
		if te.info, err = te.eng.Info(ctx); err != nil {
			enginesErr = err
			return
		}
		if te.runtime != "" && !slices.Contains(te.info.Runtimes, te.runtime) {
			enginesErr = fmt.Errorf("engine %s: the daemon offers runtimes %v, not %q: register it (scripts/gvisor-docker.sh)", tg.name, te.info.Runtimes, te.runtime)
			return
		}
		var acc []string
		for _, l := range []struct {
			name string
			ok   bool
		}{{"memory", te.info.MemoryLimit}, {"cpus", te.info.CPULimit}, {"pids", te.info.PidsLimit}} {
			if !l.ok {
				acc = append(acc, fmt.Sprintf("%q", l.name))
			}
		}
		if len(acc) > 0 {
			te.accept = "accept_unenforced = [" + strings.Join(acc, ", ") + "]"
		}
		if te.runtime != "" {
			te.accept += fmt.Sprintf("\n  runtime = %q", te.runtime)
		}
		if tg.kind != "docker" {
			te.accept += fmt.Sprintf("\n  engine = %q", tg.kind)
		}
		engines = append(engines, te)
	}
}

// connectDocker opens the Docker engine at te.host, and the plain Docker
// client the tests check it with from outside.
func (te *testEngine) connectDocker(ctx context.Context) error {
	eng, err := docker.New(ctx, te.host)
	if err != nil {
		return err
	}
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if te.host != "" {
		opts = append(opts, client.WithHost(te.host))
		te.env = []string{"DOCKER_HOST=" + te.host}
	}
	te.eng = eng
	te.raw, err = client.NewClientWithOpts(opts...)
	return err
}

// forEachEngine runs f as a subtest per engine of the full suite (rootful
// and rootless Docker), with the test image built.
func forEachEngine(t *testing.T, f func(t *testing.T, te *testEngine)) {
	t.Helper()
	runOn(t, false, f)
}

// forEveryBackend runs a conformance test: on every backend, the full
// suite's engines and the conformance-only ones (gVisor, containerd,
// Podman).
func forEveryBackend(t *testing.T, f func(t *testing.T, te *testEngine)) {
	t.Helper()
	runOn(t, true, f)
}

func runOn(t *testing.T, conformance bool, f func(t *testing.T, te *testEngine)) {
	t.Helper()
	runWhere(t, func(te *testEngine) bool { return conformance || !te.conformanceOnly }, f)
}

// onEngine runs a test that only one engine can host (say why at the
// caller); that engine missing is a failure, never a skip.
func onEngine(t *testing.T, name string, f func(t *testing.T, te *testEngine)) {
	t.Helper()
	if n := runWhere(t, func(te *testEngine) bool { return te.name == name }, f); n == 0 {
		t.Fatalf("this test runs on the %s engine, which the suite does not have", name)
	}
}

// runWhere runs f as a subtest on every engine pick accepts, and says how
// many.
func runWhere(t *testing.T, pick func(*testEngine) bool, f func(t *testing.T, te *testEngine)) int {
	t.Helper()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	enginesOnce.Do(setupEngines)
	if enginesErr != nil {
		t.Fatalf("the Docker suite needs a running engine: %v", enginesErr)
	}
	n := 0
	for _, te := range engines {
		if !pick(te) {
			continue
		}
		n++
		t.Run(te.name, func(t *testing.T) {
			ensureImage(t, te)
			f(t, te)
		})
	}
	return n
}

func ensureImage(t *testing.T, te *testEngine) {
	t.Helper()
	o, _ := imageOnce.LoadOrStore(te.name, &sync.Once{})
	o.(*sync.Once).Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		err := runner.BuildImage(ctx, te.eng, runner.ImageOptions{Ref: testImage, AgentBin: filepath.Join(bins, "runner-agent")})
		if err != nil {
			imageErr.Store(te.name, err)
		}
	})
	if err, ok := imageErr.Load(te.name); ok {
		t.Fatalf("building %s on %s: %v", testImage, te.name, err)
	}
}

// runName makes a valid run name unique to the test and engine.
func runName(t *testing.T, te *testEngine, base string) string {
	return fmt.Sprintf("t-%s-%s-%d", base, te.name[:1], time.Now().UnixNano()%100000)
}

// writeConfig writes an agents file into a fresh 0755 directory and loads it.
func writeConfig(t *testing.T, body string) (*config.Config, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "runner-e2e-cfg-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "agents.hcl")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return load(t, path), path
}

func load(t *testing.T, path string) *config.Config {
	t.Helper()
	l := config.NewLoader()
	cfg, diags := l.Load(path, nil)
	if diags.HasErrors() {
		var b strings.Builder
		config.WriteDiagnostics(&b, diags, l.Files(), false)
		t.Fatalf("config %s:\n%s", path, b.String())
	}
	return cfg
}

func newRunner(te *testEngine) *runner.Runner {
	return &runner.Runner{Engine: te.eng, Progress: testWriter{}, Program: program()}
}

func program() []string { return []string{filepath.Join(bins, "runner")} }

// destroyAtEnd removes the run even when the test fails half-way.
func destroyAtEnd(t *testing.T, te *testEngine, run string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if _, err := newRunner(te).Destroy(ctx, run); err != nil {
			t.Errorf("cleanup destroy %s: %v", run, err)
		}
	})
}

type testWriter struct{}

func (testWriter) Write(p []byte) (int, error) {
	if testing.Verbose() {
		os.Stderr.Write(p)
	}
	return len(p), nil
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return c
}

// exec runs argv in the agent's container and decodes its JSON output.
func execJSON(t *testing.T, te *testEngine, id string, out any, argv ...string) {
	t.Helper()
	res, err := te.eng.Exec(ctx(t), id, "", argv)
	if err != nil {
		t.Fatalf("exec %v: %v", argv, err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("exec %v: exit %d: %s %s", argv, res.ExitCode, res.Stdout, res.Stderr)
	}
	if err := json.Unmarshal([]byte(res.Stdout), out); err != nil {
		t.Fatalf("exec %v: output %q: %v", argv, res.Stdout, err)
	}
}

func TestHardenedContainer(t *testing.T) {
	forEveryBackend(t, func(t *testing.T, te *testEngine) {
		run := runName(t, te, "hard")
		pids := hardenedPids(te)
		cfg, _ := writeConfig(t, fmt.Sprintf(`
run %q {
  %s
}
agent "alice" {
  image   = %q
  command = ["sh", "-c", "while :; do date; sleep 5; done"]
  env     = { GREETING = "hello" }
  user    = "1000:1000"
  memory  = "256MiB"
  cpus    = 0.5
  pids    = %d
  network = "none"
  mount {
    source    = %q
    target    = "/probe"
    read_only = true
  }
}
`, run, te.accept, testImage, pids, bins))
		destroyAtEnd(t, te, run)
		res, err := newRunner(te).Apply(ctx(t), cfg)
		if err != nil {
			t.Fatalf("apply: %v", err)
		}
		id := res.IDs["alice"]
		if id == "" {
			t.Fatalf("apply returned no container for alice: %+v", res.IDs)
		}

		t.Run("outside", func(t *testing.T) {
			// Every backend: the engine's own record, through the engine.
			obs, err := te.eng.Inspect(ctx(t), id)
			if err != nil {
				t.Fatal(err)
			}
			checkObserved(t, obs, te, pids)
			switch te.name {
			case "containerd":
				checkOCISpec(t, te, ctrdSpecOf(t, te.ctrd, id), pids) // containerd's own record
				return
			case "podman":
				// Podman's compatible inspect reports its bookkeeping
				// (CapDrop expanded, no masked paths), not what runc
				// gets: check the runtime's spec, as the read-back does.
				checkOCISpec(t, te, podmanSpec(t, te, id), pids)
				return
			}
			c, err := te.raw.ContainerInspect(ctx(t), id)
			if err != nil {
				t.Fatal(err)
			}
			checkInspect(t, c, te, pids)
		})

		t.Run("inside", func(t *testing.T) {
			ps := settledProcs(t, te, id)
			if len(ps) < 3 {
				t.Fatalf("expected init, tmux and the agent's processes, saw %d: %v", len(ps), ps)
			}
			if n := len(slices.DeleteFunc(slices.Clone(ps), func(p map[string]any) bool { return !underInit(ps, p) })); n < 3 {
				t.Errorf("expected init, tmux and the agent's shell under PID 1, saw %d of %v", n, ps)
			}
			// gVisor's /proc/PID/status has no CapAmb and no NoNewPrivs
			// line (its own kernel, not Linux's); there they are asked of
			// the kernel by system call below, for the probe's process.
			gvisor := te.runtime == "runsc"
			for _, p := range ps {
				name := fmt.Sprint(p["name"], "/", p["pid"])
				for _, k := range []string{"cap_eff", "cap_prm", "cap_bnd", "cap_amb", "cap_inh"} {
					if gvisor && k == "cap_amb" && p[k] == "" {
						continue
					}
					if p[k] != "0000000000000000" {
						t.Errorf("%s: %s = %v, want 0", name, k, p[k])
					}
				}
				if p["no_new_privs"] != "1" && !(gvisor && p["no_new_privs"] == "") {
					t.Errorf("%s: NoNewPrivs = %v, want 1", name, p["no_new_privs"])
				}
				// runsc installs the OCI profile in the container's own
				// processes (init and all it starts: tmux, the agent),
				// not in processes the engine execs (docker exec: this
				// probe, runner-agent's helpers), which gVisor's kernel
				// alone confines. SECURITY.md says so.
				if p["seccomp"] != "2" && !(gvisor && !underInit(ps, p)) {
					t.Errorf("%s: Seccomp = %v, want 2 (filter)", name, p["seccomp"])
				}
				for _, uid := range strings.Fields(fmt.Sprint(p["uid"])) {
					if uid == "0" {
						t.Errorf("%s: runs as uid 0 (Uid: %v)", name, p["uid"])
					}
				}
			}
			// The same asked by system call (prctl, capget), which every
			// runtime answers, gVisor included.
			var self map[string]string
			execJSON(t, te, id, &self, "/probe/testprobe", "self")
			for k, want := range map[string]string{"no_new_privs": "1", "seccomp": "2", "cap_eff": "0000000000000000", "cap_prm": "0000000000000000",
				"cap_inh": "0000000000000000", "cap_bnd": "0000000000000000", "cap_amb": "0000000000000000"} {
				if gvisor && k == "seccomp" {
					continue // an exec'd process: no filter on runsc (above)
				}
				if self[k] != want {
					t.Errorf("probe's own %s = %q, want %q", k, self[k], want)
				}
			}
			var touch string
			execJSON(t, te, id, &touch, "/probe/testprobe", "touch", "/x")
			// gVisor checks the directory's permissions before the
			// mount's read-only flag (Linux the other way round) and its
			// statfs does not report the flag: there the agent's uid can
			// only see "permission denied"; read-only is checked from
			// outside (ReadonlyRootfs).
			if !strings.Contains(touch, "read-only file system") && !(gvisor && strings.Contains(touch, "permission denied")) {
				t.Errorf("touch /x on the root filesystem: %q, want read-only file system", touch)
			}
			if !gvisor {
				var ro bool
				execJSON(t, te, id, &ro, "/probe/testprobe", "readonly", "/")
				if !ro {
					t.Error("statfs(/): the root filesystem is not mounted read-only")
				}
			}
			execJSON(t, te, id, &touch, "/probe/testprobe", "touch", "/tmp/x")
			if touch != "ok" {
				t.Errorf("touch /tmp/x (tmpfs): %q, want ok", touch)
			}
			var mnt string
			execJSON(t, te, id, &mnt, "/probe/testprobe", "mount")
			if mnt == "ok" {
				t.Error("mount succeeded inside the container")
			}
			var uns map[string]string
			execJSON(t, te, id, &uns, "/probe/testprobe", "unshare")
			for kind, r := range uns {
				// gVisor's kernel lets an unprivileged process make a
				// mount namespace of its own (Linux needs CAP_SYS_ADMIN);
				// it is the sandbox's, and mounting in it still fails
				// (the mount probe above).
				if r == "ok" && !(gvisor && kind == "mount") {
					t.Errorf("unshare(%s) succeeded inside the container", kind)
				}
			}
			var ifs []string
			execJSON(t, te, id, &ifs, "/probe/testprobe", "netifs")
			if len(ifs) != 1 || ifs[0] != "lo" {
				t.Errorf("network none: interfaces %v, want only lo", ifs)
			}
			// On gVisor the limit counts the sandbox's host tasks, and
			// reaching it ends the whole sandbox (exit 2): the fork
			// probe would kill the container the later subtests use.
			// There the limit is checked from outside only.
			if te.info.PidsLimit && te.runtime != "runsc" {
				var fork struct {
					Started int
					Error   string
				}
				execJSON(t, te, id, &fork, "/probe/testprobe", "fork", "200")
				if fork.Started >= 64 || fork.Error == "ok" {
					t.Errorf("fork loop started %d processes (error %q); the pids limit of 64 should stop it", fork.Started, fork.Error)
				}
			}
			if te.info.Rootless || te.info.UserNS {
				var m []string
				execJSON(t, te, id, &m, "/probe/testprobe", "uidmap")
				if len(m) < 3 || m[0] != "0" || m[1] == "0" {
					t.Errorf("uid_map %v: container uid 0 must map to a non-zero host uid", m)
				}
			}
		})

		t.Run("capture", func(t *testing.T) {
			year := fmt.Sprint(time.Now().Year())
			out, err := newRunner(te).Capture(ctx(t), cfg, "alice", 0)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, year) {
				t.Errorf("pane does not show date output (%s): %q", year, out)
			}
		})

		t.Run("status", func(t *testing.T) {
			rep, err := newRunner(te).Status(ctx(t), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Agents) != 1 || rep.Agents[0].State != "running" || rep.Agents[0].Security != "verified" || rep.Agents[0].Process != "running" {
				t.Errorf("status: %+v", rep.Agents)
			}
			if rep.Rootless != te.info.Rootless {
				t.Errorf("status says rootless=%v, engine says %v", rep.Rootless, te.info.Rootless)
			}
		})
	})
}

// checkInspect checks the engine's own record of the container.
func checkInspect(t *testing.T, c container.InspectResponse, te *testEngine, pids int64) {
	t.Helper()
	h := c.HostConfig
	if len(h.CapDrop) != 1 || strings.ToUpper(h.CapDrop[0]) != "ALL" {
		t.Errorf("CapDrop = %v, want [ALL]", h.CapDrop)
	}
	if len(h.CapAdd) != 0 {
		t.Errorf("CapAdd = %v, want none", h.CapAdd)
	}
	var nnp, seccomp bool
	for _, o := range h.SecurityOpt {
		nnp = nnp || o == "no-new-privileges:true" || o == "no-new-privileges"
		seccomp = seccomp || (strings.HasPrefix(o, "seccomp=") && strings.Contains(o, "SCMP_ACT_ERRNO"))
	}
	if !nnp || !seccomp {
		t.Errorf("SecurityOpt lacks no-new-privileges (%v) or our seccomp profile (%v)", nnp, seccomp)
	}
	if !h.ReadonlyRootfs {
		t.Error("ReadonlyRootfs = false")
	}
	if h.Privileged {
		t.Error("Privileged = true")
	}
	if te.info.MemoryLimit && h.Memory != 256<<20 {
		t.Errorf("Memory = %d, want %d", h.Memory, 256<<20)
	}
	if te.info.MemoryLimit && h.MemorySwap != h.Memory {
		t.Errorf("MemorySwap = %d, want %d (no swap)", h.MemorySwap, h.Memory)
	}
	if te.info.CPULimit && h.NanoCPUs != 500_000_000 {
		t.Errorf("NanoCpus = %d, want 5e8", h.NanoCPUs)
	}
	if te.info.PidsLimit && (h.PidsLimit == nil || *h.PidsLimit != pids) {
		t.Errorf("PidsLimit = %v, want %d", h.PidsLimit, pids)
	}
	if h.Runtime != te.runtime && !(te.runtime == "" && h.Runtime == te.info.DefaultRuntime) {
		t.Errorf("Runtime = %q, want %q (default %q)", h.Runtime, te.runtime, te.info.DefaultRuntime)
	}
	if h.NetworkMode != "none" {
		t.Errorf("NetworkMode = %q, want none", h.NetworkMode)
	}
	for what, mode := range map[string]string{"pid": string(h.PidMode), "ipc": string(h.IpcMode), "uts": string(h.UTSMode), "userns": string(h.UsernsMode), "cgroupns": string(h.CgroupnsMode)} {
		if mode == "host" {
			t.Errorf("%s namespace is the host's", what)
		}
	}
	if len(h.Devices) != 0 || len(h.DeviceRequests) != 0 {
		t.Errorf("devices passed through: %v %v", h.Devices, h.DeviceRequests)
	}
	for _, m := range c.Mounts {
		if strings.HasSuffix(m.Source, ".sock") || strings.Contains(m.Source, "docker") {
			t.Errorf("suspicious mount %s -> %s", m.Source, m.Destination)
		}
		if m.Destination == "/probe" && m.RW {
			t.Error("/probe mounted read-write; config says read_only")
		}
	}
	if c.Config.User != "1000:1000" {
		t.Errorf("User = %q", c.Config.User)
	}
	for _, e := range c.Config.Env {
		if strings.HasPrefix(e, "GREETING=") && e != "GREETING=hello" {
			t.Errorf("env %q", e)
		}
	}
	if c.Config.Labels[engine.LabelRun] == "" || c.Config.Labels[engine.LabelAgent] != "alice" || c.Config.Labels[engine.LabelConfigHash] == "" {
		t.Errorf("labels: %v", c.Config.Labels)
	}
}

// probeAgent applies a run of one agent, "a", that sleeps with the test
// probe mounted at /probe, removed when the test ends, and returns its
// container's ID.
func probeAgent(t *testing.T, te *testEngine, kind string) string {
	t.Helper()
	run := runName(t, te, kind)
	cfg, _ := writeConfig(t, fmt.Sprintf(`
run %q {
  %s
}
agent "a" {
  image   = %q
  command = ["sleep", "infinity"]
  mount {
    source = %q
    target = "/probe"
  }
}
`, run, te.accept, testImage, bins))
	destroyAtEnd(t, te, run)
	res, err := newRunner(te).Apply(ctx(t), cfg)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return res.IDs["a"]
}

// hardenedPids is TestHardenedContainer's pids limit: small enough that the
// fork probe hits it, except on gVisor, where it counts the sandbox's own
// host tasks too and may not go below config.MinPidsRunsc.
func hardenedPids(te *testEngine) int64 {
	if te.runtime == config.RuntimeRunsc {
		return config.MinPidsRunsc
	}
	return 64
}

// underInit reports whether process p (from testprobe procs) is the
// container's PID 1 or descends from it, rather than from an exec.
func underInit(ps []map[string]any, p map[string]any) bool {
	parent := map[string]string{}
	for _, q := range ps {
		parent[fmt.Sprint(q["pid"])] = fmt.Sprint(q["ppid"])
	}
	pid := fmt.Sprint(p["pid"])
	for i := 0; i < len(ps)+1; i++ {
		if pid == "1" {
			return true
		}
		next, ok := parent[pid]
		if !ok {
			return false
		}
		pid = next
	}
	return false
}

// checkObserved checks the engine's record of TestHardenedContainer's
// container as the Engine reports it (engine.Observed), so a backend
// without a Docker API (containerd) is checked from outside too.
func checkObserved(t *testing.T, o engine.Observed, te *testEngine, pids int64) {
	t.Helper()
	if len(o.CapDrop) != 1 || strings.ToUpper(o.CapDrop[0]) != "ALL" || len(o.CapAdd) != 0 {
		t.Errorf("CapDrop %v, CapAdd %v: want [ALL] and none", o.CapDrop, o.CapAdd)
	}
	if !o.NoNewPrivileges || !strings.Contains(o.SeccompProfile, "SCMP_ACT_ERRNO") {
		t.Errorf("NoNewPrivileges %v, seccomp profile %.40q", o.NoNewPrivileges, o.SeccompProfile)
	}
	if !o.ReadonlyRootfs || o.Privileged || o.Devices != 0 {
		t.Errorf("ReadonlyRootfs %v, Privileged %v, Devices %d", o.ReadonlyRootfs, o.Privileged, o.Devices)
	}
	if te.info.PidsLimit && o.PidsLimit != pids {
		t.Errorf("PidsLimit %d, want %d", o.PidsLimit, pids)
	}
	if te.info.MemoryLimit && (o.Memory != 256<<20 || o.MemorySwap != o.Memory) {
		t.Errorf("Memory %d, MemorySwap %d, want %d for both", o.Memory, o.MemorySwap, 256<<20)
	}
	if te.runtime != "" && o.Runtime != te.runtime {
		t.Errorf("Runtime %q, want %q", o.Runtime, te.runtime)
	}
	if o.User != "1000:1000" || o.Labels[engine.LabelAgent] != "alice" {
		t.Errorf("User %q, labels %v", o.User, o.Labels)
	}
}

// settledProcs is the probe's list of the container's processes, taken
// when none is named runc:[...]: that is the runtime setting up an exec
// (the transcript recorder's, a health check) before it drops its
// privileges, so it is looked at again (up to 2 s), never excused.
func settledProcs(t *testing.T, te *testEngine, id string) []map[string]any {
	t.Helper()
	var ps []map[string]any
	for try := 0; ; try++ {
		execJSON(t, te, id, &ps, "/probe/testprobe", "procs")
		settling := false
		for _, p := range ps {
			settling = settling || strings.HasPrefix(fmt.Sprint(p["name"]), "runc:")
		}
		if !settling || try == 20 {
			return ps
		}
		time.Sleep(100 * time.Millisecond)
	}
}
