package runner_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/plan"
	"github.com/runner-dev/runner/runner"
)

// mountDir is a fresh directory the engines can reach (0755), holding dirs
// (0777: every agent uid may write them) each with a marker file naming it.
func mountDir(t *testing.T, dirs ...string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "runner-e2e-mnt-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	must(t, os.Chmod(dir, 0o755))
	for _, d := range dirs {
		p := filepath.Join(dir, d)
		must(t, os.MkdirAll(p, 0o777))
		for q := p; q != dir; q = filepath.Dir(q) {
			must(t, os.Chmod(q, 0o777))
		}
		must(t, os.WriteFile(filepath.Join(p, "marker"), []byte(d+"\n"), 0o644))
	}
	return dir
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// inContainer runs argv in a container and returns its stdout, failing the
// test when it exits non-zero.
func inContainer(t *testing.T, te *testEngine, id string, argv ...string) string {
	t.Helper()
	res, err := te.eng.Exec(ctx(t), id, "", argv)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("exec %v in %s: %v, exit %d: %s", argv, id, err, res.ExitCode, res.Stderr)
	}
	return res.Stdout
}

// noMountOf checks, from outside (inspect) and from inside, that the
// container did not get src at target: its config never had target, so
// target must not exist in it at all.
func noMountOf(t *testing.T, te *testEngine, id, src, target string) {
	t.Helper()
	c, err := te.raw.ContainerInspect(ctx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Mounts {
		if m.Source == src || m.Destination == target {
			t.Errorf("container %s mounts %s at %s; it must not have %s", c.Name, m.Source, m.Destination, src)
		}
	}
	res, err := te.eng.Exec(ctx(t), id, "", []string{"ls", "-a", target})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode == 0 {
		t.Errorf("inside %s, %s exists and holds %q; the host directory must not be there", c.Name, target, res.Stdout)
	}
}

// redirectConfig: agent a writes ./ws; agent b reads its own data through
// the operator's link ./b-data. extraA and extraB are more mount blocks.
func redirectConfig(run string, te *testEngine, extraA, extraB string) string {
	return fmt.Sprintf(`
run %[1]q {
  %[2]s
}
agent "a" {
  image   = %[3]q
  command = ["sleep", "3600"]
  memory  = "64MiB"
  pids    = 64
  mount {
    source    = "./ws"
    target    = "/ws"
    read_only = false
  }
  %[4]s
}
agent "b" {
  image   = %[3]q
  command = ["sleep", "3600"]
  memory  = "64MiB"
  pids    = 64
  mount {
    source = "./b-data"
    target = "/data"
  }
  %[5]s
}
`, run, te.accept, testImage, extraA, extraB)
}

const sharedMount = `mount {
    source = "./ws/shared"
    target = "/shared"
  }`

// applyRedirectRun applies redirectConfig with no extra mounts in a fresh
// directory holding ws/shared, b1, b2 and the link b-data -> b1.
func applyRedirectRun(t *testing.T, te *testEngine) (run, dir, path string, ids map[string]string) {
	t.Helper()
	run = runName(t, te, "redir")
	destroyAtEnd(t, te, run)
	dir = mountDir(t, "ws/shared", "b1", "b2")
	must(t, os.Symlink("b1", filepath.Join(dir, "b-data")))
	path = filepath.Join(dir, "agents.hcl")
	must(t, os.WriteFile(path, []byte(redirectConfig(run, te, "", "")), 0o644))
	if _, err := newRunner(te).Apply(ctx(t), load(t, path)); err != nil {
		t.Fatalf("apply: %v", err)
	}
	return run, dir, path, containerIDs(t, te, run)
}

// The reviewer's attack: agent a, which writes ./ws, replaces ws/shared with
// a link to a host directory before agent b's (or its own second) mount of
// ./ws/shared is applied. Plan and apply refuse with the link named, and
// nothing is mounted; plan names a source that moved legitimately.
func TestMountSourceRedirectRefused(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		run, dir, v1, ids := applyRedirectRun(t, te)
		r := newRunner(te)
		host := mountDir(t, "etc") // a host directory no agent was given
		hostEtc := filepath.Join(host, "etc")

		t.Run("plan names the source that resolves differently", func(t *testing.T) {
			// The operator moves their own link: allowed, and plan says so.
			must(t, os.Remove(filepath.Join(dir, "b-data")))
			must(t, os.Symlink("b2", filepath.Join(dir, "b-data")))
			p, err := r.Plan(ctx(t), load(t, v1))
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("mount /data: source now resolves to %s/b2, was %s/b1 at the last apply", dir, dir)
			for _, a := range p.Actions {
				if a.Agent == "b" && (a.Kind != plan.Replace || !strings.Contains(a.Reason, want)) {
					t.Errorf("b: %s (%s); want a replace saying %q", a.Kind, a.Reason, want)
				}
			}
			must(t, os.Remove(filepath.Join(dir, "b-data")))
			must(t, os.Symlink("b1", filepath.Join(dir, "b-data")))
		})

		t.Run("own nested mount under a directory the agent writes", func(t *testing.T) {
			// Before any link: a could swap ws/shared after the check.
			path := filepath.Join(dir, "a-nested.hcl")
			must(t, os.WriteFile(path, []byte(redirectConfig(run, te, sharedMount, "")), 0o644))
			_, err := r.Plan(ctx(t), load(t, path))
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("is reached through %q, which everyone can write", dir+"/ws")) {
				t.Errorf("plan: %v; want ./ws/shared refused for the open directory on the way", err)
			}
		})

		// From inside a: ws/shared becomes a link to the host directory.
		inContainer(t, te, ids["a"], "rm", "-rf", "/ws/shared")
		inContainer(t, te, ids["a"], "ln", "-s", hostEtc, "/ws/shared")
		if fi, err := os.Lstat(filepath.Join(dir, "ws/shared")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Fatalf("the agent's link is not on the host: %v %v", fi, err)
		}

		v2 := filepath.Join(dir, "b-shared.hcl")
		must(t, os.WriteFile(v2, []byte(redirectConfig(run, te, "", sharedMount)), 0o644))
		v3 := filepath.Join(dir, "a-shared.hcl")
		must(t, os.WriteFile(v3, []byte(redirectConfig(run, te, sharedMount, "")), 0o644))
		for _, c := range []struct{ name, file, agent, whose string }{
			{"into another agent", v2, "b", `agent "a"'s writable mount`},
			{"into the agent's own second mount", v3, "a", "this agent's own writable mount"},
		} {
			t.Run(c.name, func(t *testing.T) {
				cfg := load(t, c.file)
				wantErr := func(what string, err error) {
					t.Helper()
					var se *config.SourceError
					if !errors.As(err, &se) || !strings.Contains(err.Error(), fmt.Sprintf("symlink %q -> %q", dir+"/ws/shared", hostEtc)) || !strings.Contains(err.Error(), c.whose) {
						t.Errorf("%s: %v; want the link inside %s named", what, err, c.whose)
					}
				}
				_, err := r.Plan(ctx(t), cfg)
				wantErr("plan", err)
				_, err = r.Apply(ctx(t), cfg)
				wantErr("apply", err)
				if now := containerIDs(t, te, run); fmt.Sprint(now) != fmt.Sprint(ids) {
					t.Errorf("a refused apply changed containers: %v -> %v", ids, now)
				}
				noMountOf(t, te, ids[c.agent], hostEtc, "/shared")

				out, err := runnerCmd(te, "plan", c.file).CombinedOutput()
				if exitCode(t, err) != 1 || !strings.Contains(string(out), "Error: Mount source passes through a symlink in a writable mount") || !strings.Contains(string(out), filepath.Base(c.file)+":") {
					t.Errorf("runner plan: exit %d, want 1 with a file:line:col diagnostic:\n%s", exitCode(t, err), out)
				}
			})
		}

	})
}

// The same link pointed at /etc used to make every command on the run fail
// at config load, destroy included. Apply refuses it; status, capture,
// logs, audit and destroy need only the run, and destroy leaves nothing.
func TestMountSourceBrokenRunStillOperable(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		run, dir, _, ids := applyRedirectRun(t, te)
		inContainer(t, te, ids["a"], "rm", "-rf", "/ws/shared")
		inContainer(t, te, ids["a"], "ln", "-s", "/etc", "/ws/shared")
		v2 := filepath.Join(dir, "b-shared.hcl")
		must(t, os.WriteFile(v2, []byte(redirectConfig(run, te, "", sharedMount)), 0o644))
		for _, cmd := range []string{"plan", "apply"} {
			out, err := runnerCmd(te, cmd, v2).CombinedOutput()
			if exitCode(t, err) != 1 || !strings.Contains(string(out), fmt.Sprintf("symlink %q -> %q", dir+"/ws/shared", "/etc")) {
				t.Errorf("runner %s with the link at /etc: exit %d, want 1 naming the link:\n%s", cmd, exitCode(t, err), out)
			}
		}
		noMountOf(t, te, ids["b"], "/etc", "/shared")
		for _, args := range [][]string{
			{"status", v2, "-o", "json"},
			{"capture", v2, "b"},
			{"logs", v2, "b"},
			{"audit", v2},
		} {
			out, err := runnerCmd(te, args...).CombinedOutput()
			if code := exitCode(t, err); code != 0 {
				t.Errorf("runner %s on the run with a redirected source: exit %d:\n%s", strings.Join(args, " "), code, out)
			}
			if args[0] == "status" && (!strings.Contains(string(out), `"agent": "a"`) || !strings.Contains(string(out), `"agent": "b"`)) {
				t.Errorf("runner status does not show both agents:\n%s", out)
			}
		}
		out, err := runnerCmd(te, "destroy", v2).CombinedOutput()
		if exitCode(t, err) != 0 || !strings.Contains(string(out), "2 containers removed") {
			t.Errorf("runner destroy: exit %d:\n%s", exitCode(t, err), out)
		}
		assertGone(t, te, run)
	})
}

// removeHook is the real engine, running hook before each Remove: the last
// thing an agent does before its container goes away.
type removeHook struct {
	engine.Engine
	hook func(id string)
}

func (e removeHook) Remove(ctx context.Context, id string) error {
	e.hook(id)
	return e.Engine.Remove(ctx, id)
}

// No check-then-use gap: what the engine mounts is what was checked at the
// moment of use. Nothing an agent controls can change a source's path once
// it is accepted (every directory on the way is writable only by the
// operator and root), so here the operator's own link moves while apply
// replaces the agent, after plan resolved it: apply resolves again right
// before it creates the container, and refuses.
func TestMountSourceRecheckedAtCreate(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		run, dir, path, ids := applyRedirectRun(t, te)
		// A change that replaces both, and b-data moving to b2 as b goes.
		must(t, os.WriteFile(path, []byte(strings.Replace(redirectConfig(run, te, "", ""), `"3600"`, `"3601"`, 2)), 0o644))
		cfg := load(t, path)
		moved := false
		r := &runner.Runner{Engine: removeHook{te.eng, func(id string) {
			if id == ids["b"] {
				moved = true
				os.Remove(filepath.Join(dir, "b-data"))
				os.Symlink("b2", filepath.Join(dir, "b-data"))
			}
		}}, Progress: testWriter{}, Program: program()}
		_, err := r.Apply(ctx(t), cfg)
		if !moved {
			t.Fatal("the hook never ran: the test did not exercise the window")
		}
		if err == nil || !strings.Contains(err.Error(), "changed during apply") && !strings.Contains(err.Error(), "when apply began") {
			t.Fatalf("apply: %v; want the agent whose source moved during apply refused", err)
		}
		for agent, id := range containerIDs(t, te, run) {
			c, err := te.raw.ContainerInspect(ctx(t), id)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range c.Mounts {
				if m.Source == filepath.Join(dir, "b2") {
					t.Errorf("%s mounts %s, which nothing checked", agent, m.Source)
				}
			}
		}
	})
}

// A link an agent planted while it could write ./ws is refused after that
// mount is gone (here: the whole run destroyed): it is not the operator's.
func TestMountSourceLinkFromEarlierApply(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		run, dir, _, ids := applyRedirectRun(t, te)
		host := mountDir(t, "etc")
		hostEtc := filepath.Join(host, "etc")
		inContainer(t, te, ids["a"], "rm", "-rf", "/ws/shared")
		inContainer(t, te, ids["a"], "ln", "-s", hostEtc, "/ws/shared")
		if _, err := newRunner(te).Destroy(ctx(t), run); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "later.hcl")
		must(t, os.WriteFile(path, []byte(fmt.Sprintf(`
run %q {
  %s
}
agent "b" {
  image   = %q
  command = ["sleep", "3600"]
  mount {
    source = "./ws/shared"
    target = "/shared"
  }
}
`, run, te.accept, testImage)), 0o644))
		_, err := newRunner(te).Apply(ctx(t), load(t, path))
		if err == nil || !strings.Contains(err.Error(), "someone else's symlink") || !strings.Contains(err.Error(), fmt.Sprintf("%q -> %q", dir+"/ws/shared", hostEtc)) {
			t.Errorf("apply: %v; want the agent's old link refused", err)
		}
		if ids := containerIDs(t, te, run); len(ids) != 0 {
			noMountOf(t, te, ids["b"], hostEtc, "/shared")
			t.Errorf("a refused apply created containers: %v", ids)
		}
	})
}

// Writable mounts of containers that are running, but not in the file
// being applied, count too: another run's agent, and an agent this apply is
// about to delete, write there while the apply runs.
func TestMountSourceNestedInARunningContainersMount(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		run, dir, _, _ := applyRedirectRun(t, te) // agent a writes ./ws
		other := runName(t, te, "other")
		destroyAtEnd(t, te, other)
		body := func(run string) string {
			return fmt.Sprintf(`
run %q {
  %s
}
agent "c" {
  image   = %q
  command = ["sleep", "3600"]
  mount {
    source = "./ws/shared"
    target = "/shared"
  }
}
`, run, te.accept, testImage)
		}
		for _, c := range []struct{ name, run, whose string }{
			{"another run", other, fmt.Sprintf("of run %q's agent \"a\"", run)},
			{"an agent apply deletes", run, "of agent \"a\"'s running container"},
		} {
			t.Run(c.name, func(t *testing.T) {
				path := filepath.Join(dir, c.run+".hcl")
				must(t, os.WriteFile(path, []byte(body(c.run)), 0o644))
				_, err := newRunner(te).Apply(ctx(t), load(t, path))
				if err == nil || !strings.Contains(err.Error(), "lies inside the writable mount "+dir+"/ws "+c.whose) {
					t.Errorf("apply: %v; want the running container's writable mount named", err)
				}
				if id, ok := containerIDs(t, te, c.run)["c"]; ok {
					t.Errorf("a refused apply created c: %s", id)
				}
			})
		}
	})
}
