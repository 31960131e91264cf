package config

import (
	"flag"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// goldenVars are the -var values each testdata case is loaded with.
var goldenVars = map[string]map[string]string{
	"var_override": {
		"command": `["python3", "-m", "http.server"]`,
		"image":   "localhost/custom:1",
		"agents":  "2",
		"user":    "2000:2000",
	},
	"var_undeclared": {"nope": "1"},
	"var_bad_value":  {"pids": "lots", "cmd": `{ a = 1 }`, "tags": `["a",`},
	"secrets":        {"key": "sk-ant-api03-TOPSECRET"},
	"secret_errors":  {"key": "sk-ant-api03-TOPSECRET", "plain": "not-secret"},
}

// TestGolden loads every testdata/NAME.hcl and compares what the CLI would
// print (diagnostics, or the loaded Config) with testdata/NAME.golden.
// Each case runs in a fresh directory with the fixtures from fixtures(), and
// the directory's path is written as $TMP so the goldens are stable.
func TestGolden(t *testing.T) {
	hostEnv(t)
	inputs, err := filepath.Glob("testdata/*.hcl")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no testdata/*.hcl: %v", err)
	}
	for name := range goldenVars {
		if !slices.Contains(inputs, filepath.Join("testdata", name+".hcl")) {
			t.Errorf("goldenVars names %q, but there is no testdata/%s.hcl", name, name)
		}
	}
	for _, input := range inputs {
		name := strings.TrimSuffix(filepath.Base(input), ".hcl")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(input)
			if err != nil {
				t.Fatal(err)
			}
			golden, err := filepath.Abs(filepath.Join("testdata", name+".golden"))
			if err != nil {
				t.Fatal(err)
			}
			dir := fixtures(t)
			// The operator's home is a fixture too, so its secrets exist.
			t.Setenv("HOME", filepath.Join(dir, "home"))
			file := name + ".hcl"
			if err := os.WriteFile(filepath.Join(dir, file), src, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Chdir(dir)

			l := NewLoader()
			cfg, diags := l.Load(file, goldenVars[name])
			if cfg != nil && diags.HasErrors() {
				t.Error("Load returned a Config along with errors")
			}
			var b strings.Builder
			if err := WriteDiagnostics(&b, diags, l.Files(), false); err != nil {
				t.Fatal(err)
			}
			if cfg != nil {
				// The mount-source stage, as validate, plan and apply run it.
				srcs := CheckSources(cfg)
				if err := WriteDiagnostics(&b, srcs.Diagnostics(), l.Files(), false); err != nil {
					t.Fatal(err)
				}
				if srcs.Err() == nil {
					dump(&b, cfg, srcs)
				}
			}
			got := strings.ReplaceAll(b.String(), realPath(t, dir), "$TMP")
			got = strings.ReplaceAll(got, dir, "$TMP")

			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s (go test -update rewrites it):\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}

// hostEnv pins the environment that adds forbidden mount sources, so the
// goldens do not depend on who runs the tests.
func hostEnv(t *testing.T) {
	t.Setenv("HOME", "/nonexistent/home")
	t.Setenv("XDG_RUNTIME_DIR", "/nonexistent/xdg")
	t.Setenv("DOCKER_HOST", "")
	t.Setenv("CONTAINERD_ADDRESS", "")
	t.Setenv("RUNNER_STATE_DIR", "/nonexistent/state")
}

// fixtures makes a directory holding what the testdata files refer to.
func fixtures(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(filepath.Join(dir, "work"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "prompt.txt"), []byte("You review code.\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "big.txt"), make([]byte, maxFileSize+1), 0o644))
	must(os.WriteFile(filepath.Join(dir, "long.txt"), []byte(strings.Repeat("a", MaxMessage+1)), 0o644))
	must(os.WriteFile(filepath.Join(dir, "latin1.txt"), []byte{0xe9, '\n'}, 0o644))
	must(syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600))
	// A real listening socket, as an engine's would be, and links to it.
	ln, err := net.Listen("unix", filepath.Join(dir, "engine.sock"))
	must(err)
	t.Cleanup(func() { ln.Close() })
	must(os.Symlink("engine.sock", filepath.Join(dir, "sock-link")))
	must(os.Symlink("sock-link", filepath.Join(dir, "link-to-link")))
	must(os.Symlink("/etc", filepath.Join(dir, "etc-link")))
	must(os.Symlink("work", filepath.Join(dir, "work-link")))
	must(os.Symlink("nope", filepath.Join(dir, "dangling")))
	must(os.Symlink("loop-b", filepath.Join(dir, "loop-a")))
	must(os.Symlink("loop-a", filepath.Join(dir, "loop-b")))
	// A writable workspace in which an agent replaced "shared" with a link
	// to a host directory, and a real subdirectory beside it.
	for _, d := range []string{"ws/sub", "hostdir", "proj/inner", "home/.ssh", "home/.config/gcloud", "home/project"} {
		must(os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	must(os.Symlink("../hostdir", filepath.Join(dir, "ws/shared")))
	must(os.WriteFile(filepath.Join(dir, "home/.bashrc"), nil, 0o644))
	must(os.Symlink("home/.ssh", filepath.Join(dir, "keys")))
	// A directory everyone can write (as one given to agents is), with a
	// subdirectory, and a group-writable one of ours.
	must(os.MkdirAll(filepath.Join(dir, "open/sub"), 0o755))
	must(os.Chmod(filepath.Join(dir, "open"), 0o777))
	must(os.MkdirAll(filepath.Join(dir, "ours/sub"), 0o755))
	must(os.Chmod(filepath.Join(dir, "ours"), 0o775))
	return dir
}

func realPath(t *testing.T, p string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// dump writes a loaded Config in a form that is easy to review in a golden.
func dump(b *strings.Builder, cfg *Config, srcs *Sources) {
	fmt.Fprintf(b, "file %s (dir %s)\n", cfg.File, cfg.Dir)
	r := cfg.Run
	fmt.Fprintf(b, "run %q engine=%s require_rootless=%t accept_unenforced=%q at %s\n",
		r.Name, r.Engine, r.RequireRootless, r.AcceptUnenforced, at(r.DeclRange))
	if r.EgressDefault != nil {
		fmt.Fprintf(b, "  egress_default %q\n", r.EgressDefault)
	}
	if r.Runtime != "" {
		fmt.Fprintf(b, "  runtime %s\n", r.Runtime)
	}
	for _, a := range cfg.Agents {
		fmt.Fprintf(b, "agent %q at %s\n", a.Name, at(a.DeclRange))
		fmt.Fprintf(b, "  image     %s\n", a.Image)
		fmt.Fprintf(b, "  command   %q\n", a.Command)
		for _, k := range slices.Sorted(maps.Keys(a.Env)) {
			fmt.Fprintf(b, "  env       %s=%q\n", k, a.Env[k])
		}
		if a.User == "" {
			fmt.Fprintf(b, "  user      (one of its own, allocated at apply)\n")
		} else {
			fmt.Fprintf(b, "  user      %s\n", a.User)
		}
		fmt.Fprintf(b, "  memory    %d\n", a.Memory)
		fmt.Fprintf(b, "  nano_cpus %d\n", a.NanoCPUs)
		fmt.Fprintf(b, "  pids      %d\n", a.Pids)
		fmt.Fprintf(b, "  network   %s\n", a.Network)
		if a.Runtime != "" {
			fmt.Fprintf(b, "  runtime   %s\n", a.Runtime)
		}
		fmt.Fprintf(b, "  workdir   %s\n", a.Workdir)
		fmt.Fprintf(b, "  tmp_size  %d\n", a.TmpSize)
		fmt.Fprintf(b, "  home_size %d\n", a.HomeSize)
		reals, _ := srcs.Agent(a.Name)
		for i, m := range a.Mounts {
			fmt.Fprintf(b, "  mount     %s -> %s read_only=%t", m.Source, m.Target, m.ReadOnly)
			if m.AllowSensitive {
				b.WriteString(" allow_sensitive")
			}
			if reals[i] != m.Source {
				fmt.Fprintf(b, " (source resolves to %s)", reals[i])
			}
			b.WriteByte('\n')
		}
		if len(a.SendTo) > 0 {
			fmt.Fprintf(b, "  send_to   %q\n", a.SendTo)
		}
		if peers := cfg.Peers(a.Name); len(peers) > 0 {
			fmt.Fprintf(b, "  peers     %q\n", peers)
		}
		set := ""
		if a.RestartSet {
			set = " (set)"
		}
		fmt.Fprintf(b, "  restart   %s max_restarts=%d%s\n", a.Restart, a.MaxRestarts, set)
		for _, c := range a.Checkins {
			if c.AfterIdle > 0 {
				fmt.Fprintf(b, "  checkin   after_idle=%s message=%q at %s\n", c.AfterIdle, c.Message, at(c.DeclRange))
				continue
			}
			fmt.Fprintf(b, "  checkin   every=%s message=%q at %s\n", c.Every, c.Message, at(c.DeclRange))
		}
		if a.Brief != "" {
			fmt.Fprintf(b, "  brief     %q\n", a.Brief)
		}
		if e := a.Egress; e != nil {
			from := "egress block"
			if e.Default {
				from = "egress_default"
			}
			fmt.Fprintf(b, "  egress    allow=%q deny=%q rules=%d (%s at %s)\n", e.Allow, e.Deny, e.Rules.Len(), from, at(e.DeclRange))
		}
		for _, sec := range a.Secrets {
			dumpSecret(b, sec)
		}
	}
}

func TestCountedAgentsDoNotShareEnv(t *testing.T) {
	hostEnv(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "agents.hcl")
	src := `run "r" {}
agent "eng" {
  count   = 2
  command = ["true"]
  env     = { A = "x" }
}
`
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, diags := Load(path, nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	cfg.Agents[0].Env["A"] = "changed"
	if got := cfg.Agents[1].Env["A"]; got != "x" {
		t.Errorf("eng-2 env A = %q after changing eng-1's; instances must not share a map", got)
	}
}

func TestLoadMissingFile(t *testing.T) {
	cfg, diags := Load(filepath.Join(t.TempDir(), "nope.hcl"), nil)
	if cfg != nil || !diags.HasErrors() {
		t.Fatalf("Load of a missing file = %v, %v; want an error", cfg, diags)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0":             0,
		"4096":          4096,
		"4096B":         4096,
		"1KiB":          1024,
		"256MiB":        256 << 20,
		"256 MiB":       256 << 20,
		"2GiB":          2 << 30,
		"1KB":           1000,
		"5MB":           5_000_000,
		"3GB":           3_000_000_000,
		"0GiB":          0,
		"8589934591GiB": 8589934591 << 30,
	} {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "1.5GiB", "-1", "+1", "1mb", "1M", "1 GiB ", "1  GiB", "1TiB", "9223372036854775808", "8589934592GiB", "0x10"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d; want an error", in, got)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for in, want := range map[int64]string{0: "0B", 1: "1B", 1024: "1KiB", 6 << 20: "6MiB", 1536 << 20: "1536MiB", 2 << 30: "2GiB"} {
		if got := formatSize(in); got != want {
			t.Errorf("formatSize(%d) = %q; want %q", in, got, want)
		}
	}
}

func TestParseUser(t *testing.T) {
	for in, want := range map[string]string{
		"1000":         "1000:1000",
		"1000:1000":    "1000:1000",
		"1000:2000":    "1000:2000",
		"0100:0100":    "100:100",
		"4294967294:1": "4294967294:1",
		"1:4294967294": "1:4294967294",
	} {
		got, summary, detail := parseUser(in)
		if got != want || summary != "" {
			t.Errorf("parseUser(%q) = %q, %q, %q; want %q", in, got, summary, detail, want)
		}
	}
	for in, want := range map[string]string{
		"0":             "Agent would run as root",
		"0:1000":        "Agent would run as root",
		"000:1000":      "Agent would run as root",
		"1000:0":        "Agent would run in the root group",
		"0:0":           "Agent would run as root",
		"":              "Invalid user",
		"root":          "Invalid user",
		"1000:":         "Invalid user",
		":1000":         "Invalid user",
		"-1":            "Invalid user",
		"+1000":         "Invalid user",
		" 1000":         "Invalid user",
		"1000:1000:1":   "Invalid user",
		"4294967295":    "Invalid user",
		"1:99999999999": "Invalid user",
	} {
		if got, summary, _ := parseUser(in); summary != want {
			t.Errorf("parseUser(%q) = %q, %q; want error %q", in, got, summary, want)
		}
	}
}

func TestCheckSource(t *testing.T) {
	t.Setenv("HOME", "/srv/home/u")
	t.Setenv("XDG_RUNTIME_DIR", "/xdg/1000")
	t.Setenv("DOCKER_HOST", "unix:///opt/docker/docker.sock")
	t.Setenv("CONTAINERD_ADDRESS", "/opt/ctr/containerd.sock")
	t.Setenv("RUNNER_STATE_DIR", "/srv/runner-state")
	forbidden := forbiddenSources()
	for _, p := range []string{
		"/", "/proc", "/proc/1/root", "/sys/fs/cgroup", "/dev", "/dev/null", "/etc", "/etc/shadow", "/boot",
		"/run", "/run/docker.sock", "/var/run/docker.sock", "/run/containerd", "/run/containerd/containerd.sock",
		"/run/podman/podman.sock", "/run/user/1000/docker.sock", "/run/user/1000/podman/podman.sock",
		"/var", "/var/lib", "/var/lib/docker", "/var/lib/docker/volumes/x", "/var/lib/containerd", "/var/lib/containers/storage",
		"/tmp", "/tmp/.X11-unix", "/tmp/.X11-unix/X0", "/tmp/tmux-1000", "/tmp/tmux-1000/default", "/tmp/ssh-abc/agent.1",
		"/home", "/home/bob", "/home/bob/.docker", "/home/bob/.docker/desktop/docker.sock", "/home/bob/.local",
		"/home/bob/.local/share/docker", "/home/bob/.local/share/containers/storage", "/root", "/root/.local/share/containerd",
		"/srv/home/u", "/srv/home/u/.docker/config.json", "/srv/home/u/.local/share/docker", "/srv", "/srv/home",
		"/xdg/1000", "/xdg/1000/bus", "/xdg",
		"/srv/runner-state", "/srv/runner-state/runs/r/private/creds/a",
		"/opt", "/opt/docker", "/opt/docker/docker.sock", "/opt/ctr/containerd.sock", "/opt/ctr",
	} {
		if checkSource(p, forbidden) == "" {
			t.Errorf("checkSource(%q) allowed it; want it forbidden", p)
		}
	}
	for _, p := range []string{
		"/home/bob/project", "/home/bob/.local/share/other", "/srv/home/u/src", "/srv/data", "/tmp/work",
		"/tmp/tmux", "/var/tmp/x", "/var/lib/other", "/xdg2", "/opt/app", "/opt/docker2", "/workspace", "/runner", "/devices", "/etcetera",
	} {
		if why := checkSource(p, forbidden); why != "" {
			t.Errorf("checkSource(%q) = %q; want it allowed", p, why)
		}
	}
}

func TestSensitiveSources(t *testing.T) {
	t.Setenv("HOME", "/srv/home/u")
	sensitive := sensitiveSources()
	for _, p := range []string{
		"/srv/home/u", "/srv/home", "/srv", "/", "/srv/home/u/.ssh", "/srv/home/u/.ssh/id_rsa", "/srv/home/u/.aws/credentials",
		"/srv/home/u/.kube", "/srv/home/u/.gnupg", "/srv/home/u/.config", "/srv/home/u/.config/gcloud/x", "/srv/home/u/.bashrc",
		"/srv/home/u/.profile", "/srv/home/u/.zshrc", "/srv/home/u/.git-credentials", "/srv/home/u/.netrc",
		"/home/bob", "/home/bob/.ssh", "/home/bob/.bash_profile", "/root", "/root/.kube/config", "/home",
	} {
		if checkSource(p, sensitive) == "" {
			t.Errorf("%s is not sensitive; want it refused without allow_sensitive", p)
		}
	}
	for _, p := range []string{
		"/srv/home/u/src", "/srv/home/u/.config/nvim", "/srv/home/u/.sshd", "/srv/home/u/.bashrc.d.bak/x", "/home/bob/project",
		"/root/work", "/srv/data", "/tmp/x",
	} {
		if why := checkSource(p, sensitive); why != "" {
			t.Errorf("%s: %s; want it allowed", p, why)
		}
	}
}

func TestWriteDiagnosticsColor(t *testing.T) {
	src := []byte("agent \"a\" {\n  user = \"0\"\n}\n")
	rng := hcl.Range{Filename: "a.hcl", Start: hcl.Pos{Line: 2, Column: 10, Byte: 21}, End: hcl.Pos{Line: 2, Column: 13, Byte: 24}}
	diags := hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Bad", Detail: "Fix it.", Subject: &rng}}
	var b strings.Builder
	if err := WriteDiagnostics(&b, diags, map[string]*hcl.File{"a.hcl": {Bytes: src}}, true); err != nil {
		t.Fatal(err)
	}
	want := "\x1b[1;31mError:\x1b[0m \x1b[1mBad\x1b[0m\n\n  on a.hcl:2:10:\n   2:   user = \x1b[1;4m\"0\"\x1b[0m\n\nFix it.\n\n"
	if b.String() != want {
		t.Errorf("got\n%q\nwant\n%q", b.String(), want)
	}
}

func TestWriteDiagnosticsWithoutSource(t *testing.T) {
	rng := hcl.Range{Filename: "gone.hcl", Start: hcl.Pos{Line: 7, Column: 1}, End: hcl.Pos{Line: 7, Column: 2}}
	diags := hcl.Diagnostics{
		{Severity: hcl.DiagWarning, Summary: "Odd", Detail: "Look.", Subject: &rng},
		{Severity: hcl.DiagError, Summary: "Bad"},
	}
	var b strings.Builder
	if err := WriteDiagnostics(&b, diags, nil, false); err != nil {
		t.Fatal(err)
	}
	want := "Warning: Odd\n\n  on gone.hcl:7:1:\n  (source code not available)\n\nLook.\n\nError: Bad\n\n"
	if b.String() != want {
		t.Errorf("got\n%q\nwant\n%q", b.String(), want)
	}
}

func dumpSecret(b *strings.Builder, sec Secret) {
	src := sec.Source
	fmt.Fprintf(b, "  secret    %s %s", sec.Name, src.Kind)
	switch src.Kind {
	case SourceEnv:
		fmt.Fprintf(b, "=%s", src.Env)
	case SourceFile:
		fmt.Fprintf(b, "=%s", src.File)
	case SourceCommand:
		fmt.Fprintf(b, "=%q timeout=%s", src.Command, src.Timeout)
	case SourceValue:
		fmt.Fprintf(b, "=%v (%d bytes)", src.Value, len(src.Value.Reveal()))
	}
	if sec.Refresh > 0 {
		fmt.Fprintf(b, " refresh=%s", sec.Refresh)
	}
	fmt.Fprintf(b, " at %s\n    binding %s\n", at(src.Range), sec.Binding())
}
