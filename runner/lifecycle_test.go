package runner_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"

	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/plan"
	"github.com/runner-dev/runner/internal/state"
	"github.com/runner-dev/runner/internal/uids"
	"github.com/runner-dev/runner/runner"
)

func teamConfig(run string, te *testEngine, agents map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "run %q {\n  %s\n}\n", run, te.accept)
	for _, name := range sortedKeys(agents) {
		fmt.Fprintf(&b, "agent %q {\n  image = %q\n  command = %s\n  memory = \"64MiB\"\n  pids = %d\n}\n", name, testImage, agents[name], hardenedPids(te))
	}
	return b.String()
}

func sortedKeys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	for i := range ks {
		for j := i + 1; j < len(ks); j++ {
			if ks[j] < ks[i] {
				ks[i], ks[j] = ks[j], ks[i]
			}
		}
	}
	return ks
}

func containerIDs(t *testing.T, te *testEngine, run string) map[string]string {
	t.Helper()
	list, err := te.eng.List(ctx(t), run)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, c := range list {
		if _, dup := ids[c.Agent]; dup {
			t.Errorf("two containers for agent %s", c.Agent)
		}
		ids[c.Agent] = c.ID
	}
	return ids
}

func TestApplyConverges(t *testing.T) {
	forEveryBackend(t, func(t *testing.T, te *testEngine) {
		run := runName(t, te, "conv")
		destroyAtEnd(t, te, run)
		sleep := `["sleep", "3600"]`
		agents := map[string]string{"a": sleep, "b": sleep, "c": sleep}
		cfg, path := writeConfig(t, teamConfig(run, te, agents))
		r := newRunner(te)

		res, err := r.Apply(ctx(t), cfg)
		if err != nil {
			t.Fatalf("first apply: %v", err)
		}
		if res.Plan.Count(plan.Create) != 3 {
			t.Fatalf("first apply should create 3:\n%s", res.Plan)
		}
		first := containerIDs(t, te, run)
		if len(first) != 3 {
			t.Fatalf("containers after apply: %v", first)
		}

		// A second apply of the same file changes nothing.
		res, err = r.Apply(ctx(t), cfg)
		if err != nil {
			t.Fatalf("second apply: %v", err)
		}
		if res.Plan.Changes() {
			t.Errorf("second apply was not a no-op:\n%s", res.Plan)
		}
		if again := containerIDs(t, te, run); fmt.Sprint(again) != fmt.Sprint(first) {
			t.Errorf("container IDs changed on a no-op apply: %v -> %v", first, again)
		}

		// Changing one agent's command replaces only that agent.
		agents["b"] = `["sleep", "7200"]`
		os.WriteFile(path, []byte(teamConfig(run, te, agents)), 0o644)
		cfg = load(t, path)
		p, err := r.Plan(ctx(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if p.Count(plan.Replace) != 1 || p.Count(plan.Keep) != 2 {
			t.Fatalf("plan after changing b's command:\n%s", p)
		}
		if _, err := r.Apply(ctx(t), cfg); err != nil {
			t.Fatal(err)
		}
		after := containerIDs(t, te, run)
		if after["a"] != first["a"] || after["c"] != first["c"] || after["b"] == first["b"] || after["b"] == "" {
			t.Errorf("only b should be replaced: before %v after %v", first, after)
		}

		// Removing an agent from the file deletes it.
		delete(agents, "c")
		os.WriteFile(path, []byte(teamConfig(run, te, agents)), 0o644)
		cfg = load(t, path)
		res, err = r.Apply(ctx(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if res.Plan.Count(plan.Delete) != 1 {
			t.Errorf("plan should delete c:\n%s", res.Plan)
		}
		if ids := containerIDs(t, te, run); len(ids) != 2 || ids["c"] != "" {
			t.Errorf("after removing c: %v", ids)
		}

		// Destroy leaves nothing, and is idempotent.
		for i := 0; i < 2; i++ {
			if _, err := r.Destroy(ctx(t), run); err != nil {
				t.Fatalf("destroy #%d: %v", i+1, err)
			}
		}
		if ids := containerIDs(t, te, run); len(ids) != 0 {
			t.Errorf("containers left after destroy: %v", ids)
		}
		if st, _ := state.ForRun(run); st.Exists() {
			t.Errorf("state left after destroy: %s", st.Dir())
		} else if matches, _ := filepath.Glob(filepath.Join(st.Root, "archive", run+"-*.audit.log")); len(matches) != 1 {
			t.Errorf("destroy should keep the run's audit log in the archive, found %v", matches)
		}
		if te.raw == nil {
			return // no Docker API: no networks to look for
		}
		nets, err := te.raw.NetworkList(ctx(t), networkListOptions(run))
		if err != nil {
			t.Fatal(err)
		}
		if len(nets) != 0 {
			t.Errorf("networks left after destroy: %v", nets)
		}
	})
}

// TestFailingAgentReportsAndConverges: one agent's image has no tmux. Apply
// names that agent and the reason, leaves no half-created container for it,
// starts the others, and a fixed config converges.
func TestFailingAgentReportsAndConverges(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		noTmux := buildNoTmuxImage(t, te)
		run := runName(t, te, "fail")
		destroyAtEnd(t, te, run)
		body := func(img string) string {
			return fmt.Sprintf(`
run %q {
  %s
}
agent "good" {
  image   = %q
  command = ["sleep", "3600"]
}
agent "broken" {
  image   = %q
  command = ["sleep", "3600"]
}
`, run, te.accept, testImage, img)
		}
		cfg, path := writeConfig(t, body(noTmux))
		r := newRunner(te)
		start := time.Now()
		_, err := r.Apply(ctx(t), cfg)
		if err == nil {
			t.Fatal("apply with an image lacking tmux succeeded")
		}
		if time.Since(start) > 2*time.Minute {
			t.Errorf("a missing tmux should fail fast, took %s", time.Since(start))
		}
		var ae *runner.AgentError
		if !errors.As(err, &ae) || ae.Agent != "broken" || !strings.Contains(err.Error(), "tmux not found") {
			t.Fatalf("error should name agent broken and say tmux is missing: %v", err)
		}
		ids := containerIDs(t, te, run)
		if ids["good"] == "" || ids["broken"] != "" {
			t.Errorf("after a partial failure want only good's container, got %v", ids)
		}

		os.WriteFile(path, []byte(body(testImage)), 0o644)
		cfg = load(t, path)
		res, err := r.Apply(ctx(t), cfg)
		if err != nil {
			t.Fatalf("re-apply after the fix: %v", err)
		}
		if res.Plan.Count(plan.Create) != 1 || res.Plan.Count(plan.Keep) != 1 {
			t.Errorf("re-apply should create broken and keep good:\n%s", res.Plan)
		}
		if after := containerIDs(t, te, run); after["good"] != ids["good"] || after["broken"] == "" {
			t.Errorf("re-apply: before %v after %v", ids, after)
		}
	})
}

// buildNoTmuxImage builds an image that has runner-agent but no tmux.
func buildNoTmuxImage(t *testing.T, te *testEngine) string {
	t.Helper()
	bin, err := os.ReadFile(filepath.Join(bins, "runner-agent"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, mode int64, data []byte) {
		tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(data)), ModTime: time.Unix(0, 0)})
		tw.Write(data)
	}
	add("Dockerfile", 0o644, []byte("FROM scratch\nCOPY runner-agent /usr/local/bin/runner-agent\nUSER 1000:1000\n"))
	add("runner-agent", 0o755, bin)
	tw.Close()
	ref := "localhost/runner-test-notmux:latest"
	if err := te.eng.BuildImage(ctx(t), &buf, ref, nil, nil); err != nil {
		t.Fatal(err)
	}
	return ref
}

// tamperingEngine is the real engine with one create setting weakened, as a
// buggy or hostile engine might do: apply must notice and refuse.
type tamperingEngine struct {
	engine.Engine
	tamper func(*engine.Spec)
}

func (e tamperingEngine) Create(ctx context.Context, s engine.Spec) (string, error) {
	e.tamper(&s)
	return e.Engine.Create(ctx, s)
}

// tampering wraps eng, keeping the user namespace per run (containerd)
// that runner asks the engine for: without it the wrapper would look like
// an engine without one.
func tampering(eng engine.Engine, tamper func(*engine.Spec)) engine.Engine {
	if _, ok := eng.(engine.RunUserNS); ok {
		return tamperingUserNS{tamperingEngine{eng, tamper}}
	}
	return tamperingEngine{eng, tamper}
}

type tamperingUserNS struct{ tamperingEngine }

func (e tamperingUserNS) RunMapping(ctx context.Context, run string) (uids.Mapping, error) {
	return e.Engine.(engine.RunUserNS).RunMapping(ctx, run)
}

func TestApplyFailsClosed(t *testing.T) {
	cases := map[string]func(*engine.Spec){
		"writable rootfs": func(s *engine.Spec) { s.ReadonlyRootfs = false },
		"no nnp":          func(s *engine.Spec) { s.NoNewPrivileges = false },
		"caps kept":       func(s *engine.Spec) { s.CapDrop = nil },
		"host network":    func(s *engine.Spec) { s.Network = "host" },
		"extra mount": func(s *engine.Spec) {
			s.Mounts = append(s.Mounts, engine.Mount{Source: "/usr", Target: "/hostusr", ReadOnly: true})
		},
		"default seccomp":  func(s *engine.Spec) { s.SeccompJSON = "unconfined" },
		"different user 0": func(s *engine.Spec) { s.User = "0:0" },
		"no health check":  func(s *engine.Spec) { s.Health = nil },
		"host account uid": func(s *engine.Spec) { s.User = "1000:1000" },
		// The engine's own list, without /proc/cmdline and runner's others.
		"default masked paths": func(s *engine.Spec) { s.MaskedPaths = nil },
		"other health check": func(s *engine.Spec) {
			s.Health = &engine.Health{Test: []string{"/bin/true"}, Interval: s.Health.Interval, Timeout: s.Health.Timeout, StartPeriod: s.Health.StartPeriod, Retries: s.Health.Retries}
		},
	}
	// The conformance-only backends run a few (each is an apply), and the
	// one only they can fail: their runtime dropped for the engine's
	// default.
	few := map[string]bool{"no nnp": true, "caps kept": true, "default seccomp": true, "runtime dropped": true}
	forEveryBackend(t, func(t *testing.T, te *testEngine) {
		cases := maps.Clone(cases)
		if te.runtime != "" {
			cases["runtime dropped"] = func(s *engine.Spec) { s.Runtime = "" }
		}
		for name, tamper := range cases {
			if te.conformanceOnly && !few[name] {
				continue
			}
			t.Run(strings.ReplaceAll(name, " ", "-"), func(t *testing.T) {
				run := runName(t, te, "closed")
				destroyAtEnd(t, te, run)
				cfg, _ := writeConfig(t, fmt.Sprintf("run %q {\n %s\n}\nagent \"x\" {\n image = %q\n command = [\"sleep\", \"60\"]\n}\n", run, te.accept, testImage))
				eng := tampering(te.eng, tamper)
				if te.ctrd != nil {
					// containerd's spec builder refuses a weakened Spec
					// at create ("not hardened", nothing is created), so
					// the read-back is tested as a hostile containerd
					// would defeat it: the same setting weakened in the
					// stored OCI spec after create.
					w, ok := ociWeakenings[name]
					if !ok {
						t.Fatalf("no OCI weakening for %q on containerd: add one to ociWeakenings", name)
					}
					eng = &weakening{Engine: te.eng, weaken: w, t: t}
				}
				r := &runner.Runner{Engine: eng, Program: program()}
				_, err := r.Apply(ctx(t), cfg)
				if err == nil || !strings.Contains(err.Error(), "refusing to start") {
					t.Fatalf("apply with %s: want refusal, got %v", name, err)
				}
				if name == "runtime dropped" && !strings.Contains(err.Error(), `Runtime: want "`+te.runtime+`"`) {
					t.Errorf("the refusal should name the runtime: %v", err)
				}
				if ids := containerIDs(t, te, run); len(ids) != 0 {
					t.Errorf("a refused container was left behind: %v", ids)
				}
			})
		}
	})
}

// The CLI: bad input gives a clear error and a non-zero exit, and creates nothing.
func TestCLIBadInput(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		run := runName(t, te, "cli")
		dir := t.TempDir()
		write := func(name, body string) string {
			p := filepath.Join(dir, name)
			os.WriteFile(p, []byte(body), 0o644)
			return p
		}
		cases := []struct {
			name, file, want string
			env              []string
		}{
			{name: "malformed", file: write("bad.hcl", "run \"x\" {\n  engine = \n}\n"), want: "bad.hcl:"},
			{name: "unknown attribute", file: write("unk.hcl", fmt.Sprintf("run %q {}\nagent \"a\" {\n command = [\"true\"]\n colour = \"red\"\n}\n", run)), want: "colour"},
			{name: "bad name", file: write("name.hcl", fmt.Sprintf("run %q {}\nagent \"Bad_Name\" {\n command = [\"true\"]\n}\n", run)), want: "Bad_Name"},
			{name: "uid 0", file: write("root.hcl", fmt.Sprintf("run %q {}\nagent \"a\" {\n command = [\"true\"]\n user = \"0:0\"\n}\n", run)), want: "uid 0"},
			{name: "docker socket mount", file: write("sock.hcl", fmt.Sprintf("run %q {}\nagent \"a\" {\n command = [\"true\"]\n mount {\n  source = \"/var/run/docker.sock\"\n  target = \"/s\"\n }\n}\n", run)), want: "docker.sock"},
			{name: "missing image", file: write("img.hcl", fmt.Sprintf("run %q {\n %s\n}\nagent \"a\" {\n command = [\"true\"]\n image = \"localhost/nope:never\"\n}\n", run, te.accept)), want: "runner image build"},
			{name: "unreachable engine", file: write("ok.hcl", fmt.Sprintf("run %q {}\nagent \"a\" {\n command = [\"true\"]\n}\n", run)), want: "is the daemon running?", env: []string{"DOCKER_HOST=unix:///nonexistent/docker.sock"}},
			{name: "missing file", file: filepath.Join(dir, "absent.hcl"), want: "Error: Cannot read the configuration file\n\n" + filepath.Join(dir, "absent.hcl") + ": no such file"},
		}
		for _, c := range cases {
			t.Run(strings.ReplaceAll(c.name, " ", "-"), func(t *testing.T) {
				cmd := exec.Command(filepath.Join(bins, "runner"), "apply", c.file)
				cmd.Env = os.Environ()
				if te.host != "" {
					cmd.Env = append(cmd.Env, "DOCKER_HOST="+te.host)
				}
				cmd.Env = append(cmd.Env, c.env...)
				out, err := cmd.CombinedOutput()
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() == 0 {
					t.Fatalf("want a non-zero exit, got %v:\n%s", err, out)
				}
				if !strings.Contains(string(out), c.want) {
					t.Errorf("output lacks %q:\n%s", c.want, out)
				}
				// What to do is said once.
				if n := strings.Count(strings.ToLower(string(out)), "daemon running"); n > 1 {
					t.Errorf("the advice is repeated %d times:\n%s", n, out)
				}
				if ids := containerIDs(t, te, run); len(ids) != 0 {
					t.Errorf("bad input left containers: %v", ids)
				}
			})
		}
	})
}

// The CLI end to end on one agent: apply, status -o json, capture, destroy.
func TestCLIRoundTrip(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		run := runName(t, te, "rt")
		destroyAtEnd(t, te, run)
		_, path := writeConfig(t, fmt.Sprintf(`
variable "msg" {
  default = "unset"
}
run %q {
  %s
}
agent "echo" {
  image   = %q
  command = ["sh", "-c", "echo message=${var.msg}; sleep 3600"]
}
`, run, te.accept, testImage))
		runCLI := func(args ...string) string {
			t.Helper()
			cmd := exec.Command(filepath.Join(bins, "runner"), args...)
			cmd.Env = os.Environ()
			if te.host != "" {
				cmd.Env = append(cmd.Env, "DOCKER_HOST="+te.host)
			}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("runner %v: %v\n%s", args, err, out)
			}
			return string(out)
		}
		if out := runCLI("plan", "-var", "msg=hi", path); !strings.Contains(out, "1 to create") {
			t.Errorf("plan output:\n%s", out)
		}
		runCLI("apply", "-var", "msg=hi", path)
		if out := runCLI("apply", "-var", "msg=hi", path); !strings.Contains(out, "No changes") {
			t.Errorf("re-apply output:\n%s", out)
		}
		if out := runCLI("capture", path, "echo", "-var", "msg=hi"); !strings.Contains(out, "message=hi") {
			t.Errorf("capture should show the echo with the variable set:\n%s", out)
		}
		out := runCLI("status", path, "-o", "json", "-var", "msg=hi")
		if !strings.Contains(out, `"security": "verified"`) {
			t.Errorf("status json:\n%s", out)
		}
		if out := runCLI("destroy", path); !strings.Contains(out, "1 container removed") {
			t.Errorf("destroy output:\n%s", out)
		}
		if out := runCLI("destroy", path); !strings.Contains(out, "nothing to destroy") {
			t.Errorf("second destroy output:\n%s", out)
		}
	})
}

func networkListOptions(run string) network.ListOptions {
	return network.ListOptions{Filters: filters.NewArgs(filters.Arg("label", engine.LabelRun+"="+run))}
}
