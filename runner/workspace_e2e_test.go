package runner_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runner-dev/runner/internal/state"
	"github.com/runner-dev/runner/internal/workspace"
	"github.com/runner-dev/runner/runner"
)

// hostGitT runs the test's own git in a host repository it made.
func hostGitT(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=op", "-c", "user.email=op@example.com", "-c", "init.defaultBranch=main"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// hostRepo makes the operator's repository: a few files on main, a
// second branch, and a hook of the operator's own.
func hostRepo(t *testing.T) string {
	t.Helper()
	dir := mountDir(t)
	repo := filepath.Join(dir, "repo")
	must(t, os.Mkdir(repo, 0o755))
	hostGitT(t, repo, "init", "-q")
	must(t, os.WriteFile(filepath.Join(repo, "README"), []byte("the operator's project\n"), 0o644))
	must(t, os.MkdirAll(filepath.Join(repo, "src"), 0o755))
	must(t, os.WriteFile(filepath.Join(repo, "src/main.go"), []byte("package main\n"), 0o644))
	hostGitT(t, repo, "add", "-A")
	hostGitT(t, repo, "commit", "-qm", "initial")
	hostGitT(t, repo, "branch", "feature")
	must(t, os.WriteFile(filepath.Join(repo, ".git/hooks/post-merge"), []byte("#!/bin/sh\nexit 0\n"), 0o755))
	// An uncommitted change of the operator's, which nothing may touch.
	must(t, os.WriteFile(filepath.Join(repo, "README"), []byte("the operator's project, edited\n"), 0o644))
	return repo
}

// repoHashes hashes everything of a repository a fetch may not change:
// the working tree, HEAD, index, config, hooks, info and every ref but
// those under refs/runner/ (loose and packed). Objects are left out: a
// fetch adds them.
func repoHashes(t *testing.T, repo string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(repo, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repo, p)
		switch {
		case rel == ".git/objects", rel == ".git/refs/runner", rel == ".git/logs/refs/runner":
			return filepath.SkipDir
		case d.IsDir():
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil && d.Type()&fs.ModeSymlink != 0 {
			l, _ := os.Readlink(p)
			b, err = []byte("link:"+l), nil
		}
		if err != nil {
			return err
		}
		if rel == ".git/packed-refs" {
			var keep []string
			for _, l := range strings.Split(string(b), "\n") {
				if !strings.Contains(l, " refs/runner/") {
					keep = append(keep, l)
				}
			}
			b = []byte(strings.Join(keep, "\n"))
		}
		fi, _ := d.Info()
		sum := sha256.Sum256(b)
		out[rel] = hex.EncodeToString(sum[:8]) + fmt.Sprintf(" %v", fi.Mode())
		return nil
	})
	must(t, err)
	return out
}

func sameHashes(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s: host repository's %s changed (%s -> %q)", what, k, v, after[k])
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("%s: host repository has a new file %s", what, k)
		}
	}
}

// TestWorkspaces: agents get private clones on their own branches; fetch
// brings their commits into the host repository under refs/runner/ and
// changes nothing else there; a hostile agent's git config, hooks,
// attributes, links, corrupt objects and oversized packs run nothing on
// the host and change nothing but refs/runner/; status, diff, re-apply
// and destroy keep the work.
func TestWorkspaces(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		repo := hostRepo(t)
		canaryDir := mountDir(t)
		canary := filepath.Join(canaryDir, "pwned")
		run := runName(t, te, "ws")
		body := fmt.Sprintf(`
run %q { %s }
agent "eng" {
  count   = 2
  image   = %q
  command = ["sleep", "infinity"]
  workspace {
    repo = %q
    ref  = "main"
  }
}
agent "evil" {
  image   = %q
  command = ["sleep", "infinity"]
  workspace {
    repo = %q
    path = "/src"
  }
}
`, run, te.accept, testImage, repo, testImage, repo)
		cfg, cfgPath := writeConfig(t, body)
		before := repoHashes(t, repo)
		mainSHA := hostGitT(t, repo, "rev-parse", "main")
		// Registered before destroyAtEnd, so it runs after it.
		t.Cleanup(func() {
			if root, err := state.Root(); err == nil {
				matches, _ := filepath.Glob(filepath.Join(root, "kept", run+"-*"))
				for _, m := range matches {
					os.RemoveAll(m)
				}
			}
		})
		destroyAtEnd(t, te, run)
		noCanary := func(t *testing.T, after string) {
			t.Helper()
			if _, err := os.Lstat(canary); err == nil {
				t.Fatalf("after %s: %s exists: a host process ran something the agent wrote", after, canary)
			}
		}

		r := newRunner(te)
		res, err := r.Apply(ctx(t), cfg)
		if err != nil {
			t.Fatalf("apply: %v", err)
		}
		ids := res.IDs

		t.Run("clone is private, on the agent's branch, the agent's own", func(t *testing.T) {
			for _, a := range []string{"eng-1", "eng-2"} {
				branch := inContainer(t, te, ids[a], "git", "-C", "/workspace", "rev-parse", "--abbrev-ref", "HEAD")
				if want := "runner/" + run + "/" + a; strings.TrimSpace(branch) != want {
					t.Errorf("%s: on branch %q, want %q", a, branch, want)
				}
				if head := strings.TrimSpace(inContainer(t, te, ids[a], "git", "-C", "/workspace", "rev-parse", "HEAD")); head != mainSHA {
					t.Errorf("%s: HEAD %s, want main's %s", a, head, mainSHA)
				}
				owner := inContainer(t, te, ids[a], "stat", "-c", "%u", "/workspace", "/workspace/.git/config", "/workspace/src/main.go")
				uid := strings.TrimSpace(inContainer(t, te, ids[a], "id", "-u"))
				for _, o := range strings.Fields(owner) {
					if o != uid {
						t.Errorf("%s: clone files owned by %s, want the agent's uid %s", a, owner, uid)
					}
				}
				if remotes := inContainer(t, te, ids[a], "git", "-C", "/workspace", "remote"); strings.TrimSpace(remotes) != "" {
					t.Errorf("%s: the clone has remotes %q (naming the host path)", a, remotes)
				}
				if alt := inContainerCode(t, te, ids[a], "test", "-e", "/workspace/.git/objects/info/alternates"); alt == 0 {
					t.Errorf("%s: the clone has an alternates file", a)
				}
				// The operator's uncommitted edit stays on the host.
				if readme := inContainer(t, te, ids[a], "cat", "/workspace/README"); readme != "the operator's project\n" {
					t.Errorf("%s: README %q", a, readme)
				}
			}
		})

		t.Run("host repository unreachable from inside", func(t *testing.T) {
			for _, a := range []string{"eng-1", "evil"} {
				if code := inContainerCode(t, te, ids[a], "test", "-e", repo); code == 0 {
					t.Errorf("%s: the host repository's path %s exists in the container", a, repo)
				}
				if mi := inContainer(t, te, ids[a], "cat", "/proc/self/mountinfo"); strings.Contains(mi, repo) {
					t.Errorf("%s: a mount names the host repository:\n%s", a, mi)
				}
				c, err := te.raw.ContainerInspect(ctx(t), ids[a])
				must(t, err)
				for _, m := range c.Mounts {
					if strings.HasPrefix(m.Source, repo) {
						t.Errorf("%s: engine mounts %s at %s", a, m.Source, m.Destination)
					}
				}
			}
		})

		// Two agents commit different changes.
		inContainer(t, te, ids["eng-1"], "sh", "-c", "cd /workspace && echo one > one.txt && git add one.txt && git commit -qm 'eng-1 work'")
		inContainer(t, te, ids["eng-2"], "sh", "-c", "cd /workspace && echo two > two.txt && git add two.txt && git commit -qm 'eng-2 work'")
		eng1 := strings.TrimSpace(inContainer(t, te, ids["eng-1"], "git", "-C", "/workspace", "rev-parse", "HEAD"))
		eng2 := strings.TrimSpace(inContainer(t, te, ids["eng-2"], "git", "-C", "/workspace", "rev-parse", "HEAD"))

		// The hostile agent commits a link to a host path and filter/diff
		// attributes, then arms every git config and hook it can name.
		cmd := "touch " + canary
		inContainer(t, te, ids["evil"], "sh", "-c", `cd /src && ln -s `+repo+`/.git/config hostlink && printf '* filter=evil diff=evil\n' > .gitattributes && git add -A && git commit -qm evil`)
		for _, kv := range [][2]string{
			{"core.fsmonitor", cmd}, {"core.sshCommand", cmd}, {"core.hooksPath", "/src/.githooks"},
			{"uploadpack.packObjectsHook", cmd}, {"filter.evil.clean", cmd}, {"filter.evil.smudge", cmd},
			{"filter.evil.process", cmd}, {"filter.evil.required", "true"}, {"diff.evil.textconv", cmd},
			{"diff.evil.command", cmd}, {"core.pager", cmd}, {"core.editor", cmd}, {"credential.helper", "!" + cmd},
		} {
			inContainer(t, te, ids["evil"], "git", "-C", "/src", "config", kv[0], kv[1])
		}
		hook := "#!/bin/sh\n" + cmd + "\n"
		for _, dir := range []string{"/src/.git/hooks", "/src/.githooks"} {
			for _, h := range []string{"post-checkout", "post-merge", "reference-transaction", "pre-push", "post-update", "pre-receive", "update", "fsmonitor-watchman", "post-rewrite"} {
				inContainer(t, te, ids["evil"], "sh", "-c", fmt.Sprintf("mkdir -p %s && printf '%%s' \"$1\" > %s/%s && chmod +x %s/%s", dir, dir, h, dir, h), "sh", hook)
			}
		}
		evil := strings.TrimSpace(inContainer(t, te, ids["evil"], "git", "-C", "/src", "rev-parse", "HEAD"))
		noCanary(t, "arming")

		t.Run("fetch brings both and changes nothing else", func(t *testing.T) {
			reps, err := r.Fetch(ctx(t), cfg, nil)
			if err != nil {
				t.Fatalf("fetch: %v", err)
			}
			if len(reps) != 3 {
				t.Fatalf("fetch reports %+v", reps)
			}
			noCanary(t, "fetch")
			for a, want := range map[string]string{"eng-1": eng1, "eng-2": eng2, "evil": evil} {
				ref := fmt.Sprintf("refs/runner/%s/%s/runner/%s/%s", run, a, run, a)
				if got := hostGitT(t, repo, "rev-parse", ref); got != want {
					t.Errorf("%s: %s = %s, want %s", a, ref, got, want)
				}
			}
			refs := hostGitT(t, repo, "for-each-ref", "--format=%(refname)")
			for _, l := range strings.Fields(refs) {
				if !strings.HasPrefix(l, "refs/heads/") && !strings.HasPrefix(l, "refs/runner/"+run+"/") {
					t.Errorf("unexpected ref in the host repository: %s", l)
				}
			}
			if _, err := os.Stat(filepath.Join(repo, ".git/FETCH_HEAD")); err == nil {
				t.Error("fetch wrote FETCH_HEAD")
			}
			sameHashes(t, "fetch", before, repoHashes(t, repo))
			hostGitT(t, repo, "fsck", "--no-progress")
		})

		t.Run("diff from the fetched refs", func(t *testing.T) {
			out, err := r.Diff(ctx(t), cfg, "eng-1", true)
			if err != nil || !strings.Contains(out, "one.txt") || strings.Contains(out, "two.txt") {
				t.Errorf("diff --stat eng-1: %v\n%s", err, out)
			}
			out, err = r.Diff(ctx(t), cfg, "evil", false)
			if err != nil || !strings.Contains(out, "hostlink") {
				t.Errorf("diff evil: %v\n%s", err, out)
			}
			noCanary(t, "diff")
			sameHashes(t, "diff", before, repoHashes(t, repo))
		})

		t.Run("status from inside the containers", func(t *testing.T) {
			inContainer(t, te, ids["eng-2"], "sh", "-c", "echo draft > /workspace/draft.txt")
			rep, err := r.Status(ctx(t), cfg)
			must(t, err)
			noCanary(t, "status")
			got := map[string]*runner.WorkspaceStatus{}
			for _, a := range rep.Agents {
				got[a.Agent] = a.Workspace
				if a.Security != "verified" {
					t.Errorf("%s: security %q (%v): the workspace mount must be part of what status checks", a.Agent, a.Security, a.Violations)
				}
			}
			for a, dirty := range map[string]bool{"eng-1": false, "eng-2": true} {
				ws := got[a]
				if ws == nil || ws.Branch != "runner/"+run+"/"+a || ws.Ahead == nil || *ws.Ahead != 1 || ws.Dirty == nil || *ws.Dirty != dirty || ws.Fetched == nil || ws.Base != mainSHA {
					t.Errorf("%s: workspace status %+v; want its branch, 1 ahead, dirty %v, fetched", a, ws, dirty)
				}
			}
		})

		t.Run("the CLI's fetch, diff and status", func(t *testing.T) {
			out, errb, err := cli(te, "fetch", cfgPath, "eng-1")
			if err != nil || !strings.Contains(string(out), "eng-1: 1 branch into "+repo+", 0 changed") || !strings.Contains(string(out), eng1[:12]+" refs/runner/"+run+"/eng-1/runner/"+run+"/eng-1") {
				t.Errorf("runner fetch: %v\n%s%s", err, out, errb)
			}
			out, errb, err = cli(te, "diff", cfgPath, "eng-1", "--stat")
			if err != nil || !strings.Contains(string(out), "one.txt | 1 +") {
				t.Errorf("runner diff --stat: %v\n%s%s", err, out, errb)
			}
			out, errb, err = cli(te, "status", cfgPath)
			if err != nil || !strings.Contains(string(out), "Workspaces:") || !strings.Contains(string(out), "eng-2: runner/"+run+"/eng-2, 1 ahead of "+mainSHA[:12]+", dirty, last fetched ") {
				t.Errorf("runner status: %v\n%s%s", err, out, errb)
			}
			noCanary(t, "the CLI")
			sameHashes(t, "the CLI", before, repoHashes(t, repo))
		})

		t.Run("re-apply and a replaced container keep the clone", func(t *testing.T) {
			res, err := r.Apply(ctx(t), cfg)
			if err != nil || res.Plan.Changes() {
				t.Fatalf("re-apply: %v %v", err, res.Plan)
			}
			// Another command replaces every container; the clones stay.
			cfg2, _ := writeConfig(t, strings.ReplaceAll(body, `["sleep", "infinity"]`, `["sleep", "1000000"]`))
			res, err = r.Apply(ctx(t), cfg2)
			if err != nil || res.Plan.Count("replace") != 3 {
				t.Fatalf("apply with another command: %v %v", err, res.Plan)
			}
			ids = res.IDs
			if head := strings.TrimSpace(inContainer(t, te, ids["eng-1"], "git", "-C", "/workspace", "rev-parse", "HEAD")); head != eng1 {
				t.Errorf("eng-1 after replace: HEAD %s, want its commit %s", head, eng1)
			}
			noCanary(t, "re-apply")
			sameHashes(t, "re-apply", before, repoHashes(t, repo))
			cfg = cfg2
		})

		t.Run("hostile packs are refused clearly", func(t *testing.T) {
			// A commit fsck rejects (no author e-mail, a bad date).
			inContainer(t, te, ids["evil"], "sh", "-c", `cd /src && tree=$(git rev-parse HEAD^{tree}) && c=$(printf 'tree %s\nauthor nobody 1 +0000\ncommitter x <x> notadate\n\nbad\n' "$tree" | git hash-object -t commit --literally -w --stdin) && `+evilGit+` update-ref refs/heads/corrupt "$c"`)
			_, err := r.Fetch(ctx(t), cfg, []string{"evil"})
			if err == nil || !strings.Contains(err.Error(), "refused") {
				t.Errorf("fetch of a corrupt commit: %v; want it refused", err)
			}
			if out := hostGitT(t, repo, "for-each-ref", "refs/runner/"+run+"/evil/corrupt"); out != "" {
				t.Errorf("the corrupt branch reached the host repository: %s", out)
			}
			inContainer(t, te, ids["evil"], "sh", "-c", "cd /src && "+evilGit+" update-ref -d refs/heads/corrupt")
			// A blob over the cap.
			inContainer(t, te, ids["evil"], "sh", "-c", `cd /src && mkdir -p .git/info && printf '* -filter -diff\n' >> .git/info/attributes && head -c 3000000 /dev/urandom > big.bin && `+evilGit+` add big.bin && `+evilGit+` commit -qm big`)
			t.Setenv("RUNNER_FETCH_MAX", "1MiB")
			_, err = r.Fetch(ctx(t), cfg, []string{"evil"})
			if err == nil || !strings.Contains(err.Error(), "over the fetch cap") {
				t.Errorf("fetch of a 3 MB blob with a 1 MiB cap: %v; want it refused for the cap", err)
			}
			if got := hostGitT(t, repo, "rev-parse", fmt.Sprintf("refs/runner/%s/evil/runner/%s/evil", run, run)); got != evil {
				t.Errorf("a refused fetch moved evil's ref to %s", got)
			}
			noCanary(t, "refused fetches")
			sameHashes(t, "refused fetches", before, repoHashes(t, repo))
		})

		t.Run("destroy keeps unfetched work and says where", func(t *testing.T) {
			t.Setenv("RUNNER_FETCH_MAX", "1MiB") // evil's pack stays over the cap
			var out bytes.Buffer
			rd := &runner.Runner{Engine: te.eng, Progress: &out, Program: program()}
			// eng-1 has a new commit, fetched by destroy; eng-2 has an
			// uncommitted file; evil's pack is over the cap.
			inContainer(t, te, ids["eng-1"], "sh", "-c", "cd /workspace && echo more >> one.txt && git commit -qam 'eng-1 more'")
			eng1b := strings.TrimSpace(inContainer(t, te, ids["eng-1"], "git", "-C", "/workspace", "rev-parse", "HEAD"))
			st, err := state.ForRun(run)
			must(t, err)
			if _, err := rd.Destroy(ctx(t), run); err != nil {
				t.Fatalf("destroy: %v\n%s", err, out.String())
			}
			noCanary(t, "destroy")
			if got := hostGitT(t, repo, "rev-parse", fmt.Sprintf("refs/runner/%s/eng-1/runner/%s/eng-1", run, run)); got != eng1b {
				t.Errorf("destroy did not fetch eng-1's last commit: %s, want %s", got, eng1b)
			}
			for _, a := range []string{"eng-2", "evil"} {
				matches, _ := filepath.Glob(filepath.Join(st.Root, "kept", run+"-"+a+"-*"))
				if len(matches) != 1 || !strings.Contains(out.String(), "kept at "+matches[0]) {
					t.Errorf("%s: kept clones %v; destroy said:\n%s", a, matches, out.String())
				}
			}
			if matches, _ := filepath.Glob(filepath.Join(st.Root, "kept", run+"-eng-1-*")); len(matches) != 0 {
				t.Errorf("eng-1 was fetched, yet its clone was kept: %v", matches)
			}
			if _, err := os.Stat(workspace.Dir(st)); err == nil {
				t.Errorf("the run's workspaces outlived destroy")
			}
			sameHashes(t, "destroy", before, repoHashes(t, repo))
		})
	})
}

// evilGit is git for the hostile agent's own later commits, past the
// hooks and fsmonitor it armed (they fail in the container, where the
// canary's directory does not exist).
const evilGit = "git -c core.hooksPath=/dev/null -c core.fsmonitor=false"

// inContainerCode runs argv in a container and returns its exit code.
func inContainerCode(t *testing.T, te *testEngine, id string, argv ...string) int {
	t.Helper()
	res, err := te.eng.Exec(ctx(t), id, "", argv)
	must(t, err)
	return res.ExitCode
}

// TestWorkspaceRefChange: a workspace block whose ref changes gets a new
// clone at the new ref, and the old clone's commits are fetched into the
// repository first, and apply says so.
func TestWorkspaceRefChange(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		repo := hostRepo(t)
		run := runName(t, te, "wsref")
		body := func(ref string) string {
			return fmt.Sprintf(`
run %q { %s }
agent "a" {
  image   = %q
  command = ["sleep", "infinity"]
  workspace {
    repo = %q
    ref  = %q
  }
}
`, run, te.accept, testImage, repo, ref)
		}
		cfg, _ := writeConfig(t, body("main"))
		destroyAtEnd(t, te, run)
		var out bytes.Buffer
		r := &runner.Runner{Engine: te.eng, Progress: &out, Program: program()}
		res, err := r.Apply(ctx(t), cfg)
		if err != nil {
			t.Fatalf("apply: %v", err)
		}
		inContainer(t, te, res.IDs["a"], "sh", "-c", "cd /workspace && echo x > x.txt && git add x.txt && git commit -qm x")
		work := strings.TrimSpace(inContainer(t, te, res.IDs["a"], "git", "-C", "/workspace", "rev-parse", "HEAD"))

		// feature gets a commit of its own on the host.
		hostGitT(t, repo, "checkout", "-q", "feature")
		must(t, os.WriteFile(filepath.Join(repo, "feature.txt"), []byte("f\n"), 0o644))
		hostGitT(t, repo, "add", "feature.txt")
		hostGitT(t, repo, "commit", "-qm", "feature")
		feature := hostGitT(t, repo, "rev-parse", "feature")

		out.Reset()
		res, err = r.Apply(ctx(t), load(t, writeFile(t, body("feature"))))
		if err != nil {
			t.Fatalf("apply with ref feature: %v\n%s", err, out.String())
		}
		if !strings.Contains(out.String(), "its workspace changed: fetched its work into "+repo) {
			t.Errorf("apply did not say it fetched the old clone first:\n%s", out.String())
		}
		if got := hostGitT(t, repo, "rev-parse", fmt.Sprintf("refs/runner/%s/a/runner/%s/a", run, run)); got != work {
			t.Errorf("the old clone's commit is %s on the host, want %s", got, work)
		}
		if head := strings.TrimSpace(inContainer(t, te, res.IDs["a"], "git", "-C", "/workspace", "rev-parse", "HEAD")); head != feature {
			t.Errorf("new clone at %s, want feature's %s", head, feature)
		}
	})
}

// writeFile writes an agents file into a fresh directory and returns its path.
func writeFile(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	p := filepath.Join(dir, "agents.hcl")
	must(t, os.WriteFile(p, []byte(body), 0o644))
	return p
}
