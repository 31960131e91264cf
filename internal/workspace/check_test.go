package workspace

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/runner-dev/runner/internal/config"
)

func gitT(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"}, args...)...)
	cmd.Dir = dir
	cmd.Env = hostEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// testRepo is a repository with one commit on main, in a fresh 0755
// directory that also holds a plain directory "notrepo".
func testRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(dir, "repo")
	for _, d := range []string{repo, filepath.Join(dir, "notrepo"), filepath.Join(dir, "work")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	gitT(t, repo, "init", "-q")
	if err := os.WriteFile(filepath.Join(repo, "f"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitT(t, repo, "add", "f")
	gitT(t, repo, "commit", "-qm", "one")
	if err := os.MkdirAll(filepath.Join(repo, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// diagnose loads body from dir and runs every stage validate runs: the
// load, the mount-source rules and Check. It returns "summary @ line:col"
// per error.
func diagnose(t *testing.T, dir, body string) []string {
	t.Helper()
	t.Setenv("RUNNER_STATE_DIR", filepath.Join(dir, "state"))
	path := filepath.Join(dir, "agents.hcl")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, diags := config.Load(path, nil)
	if cfg != nil {
		srcs := config.CheckSources(cfg)
		diags = append(diags, srcs.Diagnostics()...)
		if !diags.HasErrors() {
			_, d := Check(context.Background(), cfg, srcs)
			diags = append(diags, d...)
		}
	}
	var out []string
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		where := "-"
		if d.Subject != nil {
			where = fmt.Sprintf("%d:%d", d.Subject.Start.Line, d.Subject.Start.Column)
		}
		out = append(out, d.Summary+" @ "+where+": "+d.Detail)
	}
	return out
}

func agentWith(block string) string {
	return "run \"r\" {}\nagent \"a\" {\n  command = [\"x\"]\n" + block + "}\n"
}

// TestWorkspaceBadInput: each mistake is an error at the attribute that
// is wrong, before anything is created.
func TestWorkspaceBadInput(t *testing.T) {
	dir := testRepo(t)
	cases := []struct {
		name, block, want, at string
	}{
		{"not a repository", `  workspace { repo = "notrepo" }` + "\n", "Workspace repo is not a git repository", "4:22"},
		{"missing repo", `  workspace { repo = "nope" }` + "\n", "Workspace repo does not exist", "4:22"},
		{"inside a repository", `  workspace { repo = "repo/sub" }` + "\n", "Workspace repo is not a git repository", "4:22"},
		{"ref not found", `  workspace {
    repo = "repo"
    ref  = "no-such-branch"
  }
`, "Workspace ref not found", "6:12"},
		{"ref as an option", `  workspace {
    repo = "repo"
    ref  = "--upload-pack=x"
  }
`, "Invalid workspace ref", "6:12"},
		{"system path", `  workspace {
    repo = "repo"
    path = "/etc/x"
  }
`, "Forbidden workspace path", "6:12"},
		{"clashes with a mount target", `  mount {
    source = "work"
    target = "/workspace/sub"
  }
  workspace { repo = "repo" }
`, "Workspace path clashes with a mount", "8:3"},
		{"mount gives the repository itself", `  mount {
    source = "repo"
    target = "/host"
  }
  workspace { repo = "repo" }
`, "Mount gives the agent its workspace's repository", "5:14"},
		{"two workspaces", `  workspace { repo = "repo" }
  workspace { repo = "repo" }
`, "Duplicate workspace block", "5:3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := diagnose(t, dir, agentWith(c.block))
			found := false
			for _, g := range got {
				if strings.HasPrefix(g, c.want+" @ "+c.at+":") {
					found = true
				}
			}
			if !found {
				t.Errorf("want %q at %s; got:\n%s", c.want, c.at, strings.Join(got, "\n"))
			}
		})
	}

	t.Run("repository inside another agent's writable mount", func(t *testing.T) {
		got := diagnose(t, dir, `run "r" {}
agent "w" {
  command = ["x"]
  mount {
    source    = "."
    target    = "/all"
    read_only = false
  }
}
agent "a" {
  command = ["x"]
  workspace { repo = "repo" }
}
`)
		if len(got) == 0 || !strings.Contains(strings.Join(got, "\n"), "Workspace repo overlaps another agent's writable mount") {
			t.Errorf("want the repository refused inside w's writable mount; got:\n%s", strings.Join(got, "\n"))
		}
	})

	t.Run("good", func(t *testing.T) {
		if got := diagnose(t, dir, agentWith(`  workspace {
    repo = "repo"
    ref  = "main"
  }
`)); len(got) != 0 {
			t.Errorf("want no errors; got:\n%s", strings.Join(got, "\n"))
		}
	})
}

// TestExtURL: the ext:: command keeps spaces and percent signs literal.
func TestExtURL(t *testing.T) {
	got := ExtURL([]string{"/opt/my runner/runner", "__fetch-pack-proxy", "100%"})
	if want := "ext::/opt/my% runner/runner __fetch-pack-proxy 100%% %S"; got != want {
		t.Errorf("ExtURL = %q, want %q", got, want)
	}
}

// TestParseStatus: only porcelain v2 with one sane branch name passes.
func TestParseStatus(t *testing.T) {
	ok := "# branch.oid abc\x00# branch.head runner/r/a\x00? new.txt\x00"
	st, err := ParseStatus(ok)
	if err != nil || st.Branch != "runner/r/a" || !st.Dirty {
		t.Errorf("ParseStatus(%q) = %+v, %v", ok, st, err)
	}
	for _, bad := range []string{
		"",
		"# branch.head a\x00# branch.head b\x00",
		"# branch.head \x1b]52;c;x\x07\x00",
		"hello\x00",
	} {
		if _, err := ParseStatus(bad); err == nil {
			t.Errorf("ParseStatus(%q) accepted", bad)
		}
	}
	for in, want := range map[string]int{"0\n": 0, "12\n": 12} {
		if n, err := ParseCount(in); err != nil || n != want {
			t.Errorf("ParseCount(%q) = %d, %v", in, n, err)
		}
	}
	for _, bad := range []string{"", "-1\n", "1e3\n", "12345678901\n", "1 \n"} {
		if _, err := ParseCount(bad); err == nil {
			t.Errorf("ParseCount(%q) accepted", bad)
		}
	}
}

// TestCapWriter: the proxy cuts off at the byte cap and at MaxRefs refs.
func TestCapWriter(t *testing.T) {
	var sink strings.Builder
	c := &capWriter{w: &sink, max: 10, cancel: func() {}}
	if _, err := c.Write([]byte("0000")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("0123456")); err == nil {
		t.Error("11 bytes passed a 10-byte cap")
	}
	var adv strings.Builder
	for range MaxRefs + 1 {
		adv.WriteString("000ax ref\n")
	}
	c = &capWriter{w: &sink, max: 1 << 30, cancel: func() {}}
	if _, err := c.Write([]byte(adv.String())); err == nil {
		t.Errorf("an advertisement of %d refs passed", MaxRefs+1)
	}
}
