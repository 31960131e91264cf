package runner_test

// The containerd suite: against the real containerd at
// RUNNER_TEST_CONTAINERD_ADDRESS (.ci/run starts one with
// scripts/containerd.sh). In CI a missing containerd fails, never skips.
// The Docker suite's checks from outside use Docker's inspect; here they
// read containerd's own record (the stored OCI spec) and the kernel's
// (/proc of the task's processes).

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	ctrd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/engine/containerd"
	"github.com/runner-dev/runner/internal/uids"
	"github.com/runner-dev/runner/runner"
)

// connectContainerd opens the test containerd (te.host is its address)
// and containerd's own client, for checks from outside.
func (te *testEngine) connectContainerd(ctx context.Context) error {
	eng, err := containerd.New(ctx, te.host)
	if err != nil {
		return err
	}
	te.eng = eng
	te.env = []string{"CONTAINERD_ADDRESS=" + te.host}
	te.ctrd, err = ctrd.New(strings.TrimPrefix(te.host, "unix://"), ctrd.WithDefaultNamespace(containerd.Namespace))
	if err != nil {
		return err
	}
	ctrdRaw = te.ctrd
	raw := te.ctrd
	testCleanups = append(testCleanups, func() {
		raw.ImageService().Delete(context.Background(), testImage)
	})
	return nil
}

// containerdEngine is the containerd backend of the engine table, with the
// test image imported (built with Docker), for the tests only containerd
// runs. In CI a missing containerd fails (setupEngines), never skips.
func containerdEngine(t *testing.T) *testEngine {
	t.Helper()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	enginesOnce.Do(setupEngines)
	if enginesErr != nil {
		t.Fatalf("the containerd suite needs the engine table: %v", enginesErr)
	}
	for _, te := range engines {
		if te.name == "containerd" {
			ensureImage(t, te)
			return te
		}
	}
	t.Skip("RUNNER_TEST_CONTAINERD_ADDRESS is not set (eval \"$(scripts/containerd.sh)\" and set it to $CONTAINERD_ADDRESS)")
	return nil
}

// ctrdRaw is the containerd backend's own client (connectContainerd sets it).
var ctrdRaw *ctrd.Client

// ctrdSpec reads a container's OCI spec back from containerd itself.
func ctrdSpec(t *testing.T, id string) *specs.Spec {
	t.Helper()
	return ctrdSpecOf(t, ctrdRaw, id)
}

func ctrdSpecOf(t *testing.T, raw *ctrd.Client, id string) *specs.Spec {
	t.Helper()
	c, err := raw.LoadContainer(ctx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := c.Spec(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// checkOCISpec is TestHardenedContainer's check from outside on
// containerd: its own record of the container, the stored OCI spec (there
// is no Docker inspect to ask).
func checkOCISpec(t *testing.T, te *testEngine, sp *specs.Spec, pids int64) {
	t.Helper()
	c := sp.Process.Capabilities
	if te.name == "podman" && c == nil {
		c = &specs.LinuxCapabilities{} // Podman leaves the section out for none
	}
	if c == nil || len(c.Bounding)+len(c.Effective)+len(c.Permitted)+len(c.Inheritable)+len(c.Ambient) != 0 {
		t.Errorf("capabilities %+v, want every set empty", c)
	}
	if !sp.Process.NoNewPrivileges || !sp.Root.Readonly {
		t.Errorf("NoNewPrivileges %v, read-only root %v", sp.Process.NoNewPrivileges, sp.Root.Readonly)
	}
	if sp.Linux.Seccomp == nil || sp.Linux.Seccomp.DefaultAction != specs.ActErrno {
		t.Errorf("seccomp %v", sp.Linux.Seccomp)
	}
	if !te.info.MemoryLimit || !te.info.PidsLimit || !te.info.CPULimit {
		// Rootless Podman on cgroup v1 ignores every limit (the run
		// accepts them unenforced): there must be none to misread.
		if r := sp.Linux.Resources; r != nil && (r.Memory != nil && r.Memory.Limit != nil || r.Pids != nil && r.Pids.Limit != nil) {
			t.Errorf("limits %+v on an engine that says it enforces none", r)
		}
	} else if r := sp.Linux.Resources; r == nil || r.Memory == nil || *r.Memory.Limit != 256<<20 || *r.Memory.Swap != 256<<20 || r.Pids == nil || r.Pids.Limit == nil || *r.Pids.Limit != pids || r.CPU == nil || *r.CPU.Quota*1e9/int64(*r.CPU.Period) != 5e8 {
		t.Errorf("limits %+v", r)
	}
	for _, ns := range sp.Linux.Namespaces {
		if ns.Path != "" {
			t.Errorf("namespace %s joins %s", ns.Type, ns.Path)
		}
	}
	// containerd gives the container a user namespace of the run's; rootless
	// Podman runs runc inside its own (so the spec lists none), and the
	// uid_map check inside TestHardenedContainer proves that one.
	if m := sp.Linux.UIDMappings; te.name == "containerd" && (len(m) != 1 || m[0].ContainerID != 0 || m[0].HostID == 0) {
		t.Errorf("uid mappings %+v: container 0 must map to a non-zero host uid", m)
	}
	for _, want := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.NetworkNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.MountNamespace, specs.CgroupNamespace} {
		if !slices.ContainsFunc(sp.Linux.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == want }) {
			t.Errorf("no %s namespace of its own: %+v", want, sp.Linux.Namespaces)
		}
	}
	for _, p := range []string{"/proc/kcore", "/proc/cmdline", "/proc/kallsyms"} {
		if !slices.Contains(sp.Linux.MaskedPaths, p) {
			t.Errorf("%s is not masked: %v", p, sp.Linux.MaskedPaths)
		}
	}
	if u := sp.Process.User; u.UID != 1000 || u.GID != 1000 {
		t.Errorf("user %d:%d, want 1000:1000", u.UID, u.GID)
	}
	for _, m := range sp.Mounts {
		if m.Destination == "/probe" && !slices.Contains(m.Options, "ro") {
			t.Errorf("/probe mounted with %v; config says read_only", m.Options)
		}
	}
}

func TestContainerdHardenedContainer(t *testing.T) {
	te := containerdEngine(t)
	run := runName(t, te, "hard")
	const deploy = "ctrd-deploy-secret-5f1c9a"
	t.Setenv("RUNNER_E2E_CTRD_DEPLOY", deploy)
	hcl := `
run %q {
  engine = "containerd"
}
agent "alice" {
  image   = %q
  command = ["sh", "-c", "while :; do date; sleep 5; done"]
  send_to = ["bob"]
  memory  = "256MiB"
  cpus    = 0.5
  pids    = 64
  mount {
    source    = %q
    target    = "/probe"
    read_only = true
  }
  secret "DEPLOY_KEY" {
    from_env = "RUNNER_E2E_CTRD_DEPLOY"
    file     = "/run/secrets/deploy"
  }
}
agent "bob" {
  image   = %q
  command = ["cat"]
  brief   = "brief for bob on containerd"
  env     = { GENERATION = %q }
  workspace {
    repo = %q
    ref  = "main"
  }
}
`
	repo := hostRepo(t)
	cfg, file := writeConfig(t, fmt.Sprintf(hcl, run, testImage, bins, testImage, "1", repo))
	destroyAtEnd(t, te, run)
	r := newRunner(te)
	t0 := time.Now()
	res, err := r.Apply(ctx(t), cfg)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	t.Logf("apply of 2 agents on containerd: %v", time.Since(t0).Round(time.Millisecond))
	id := res.IDs["alice"]
	user := ""

	t.Run("outside", func(t *testing.T) {
		sp := ctrdSpec(t, id)
		c := sp.Process.Capabilities
		if c == nil || len(c.Bounding)+len(c.Effective)+len(c.Permitted)+len(c.Inheritable)+len(c.Ambient) != 0 {
			t.Errorf("capabilities %+v, want every set empty", c)
		}
		if !sp.Process.NoNewPrivileges || !sp.Root.Readonly {
			t.Errorf("NoNewPrivileges %v, read-only root %v", sp.Process.NoNewPrivileges, sp.Root.Readonly)
		}
		if sp.Linux.Seccomp == nil || sp.Linux.Seccomp.DefaultAction != specs.ActErrno {
			t.Errorf("seccomp %v", sp.Linux.Seccomp)
		}
		if r := sp.Linux.Resources; *r.Memory.Limit != 256<<20 || *r.Memory.Swap != 256<<20 || *r.Pids.Limit != 64 || *r.CPU.Quota*1e9/int64(*r.CPU.Period) != 5e8 {
			t.Errorf("limits %+v %+v %+v", *r.Memory, *r.Pids, *r.CPU)
		}
		for _, ns := range sp.Linux.Namespaces {
			if ns.Path != "" {
				t.Errorf("namespace %s joins %s", ns.Type, ns.Path)
			}
		}
		if m := sp.Linux.UIDMappings; len(m) != 1 || m[0].ContainerID != 0 || m[0].HostID == 0 {
			t.Errorf("uid mappings %+v: container 0 must map to a non-zero host uid", m)
		}
		if len(sp.Linux.Devices) > 6 {
			t.Errorf("devices %+v", sp.Linux.Devices)
		}
		user = fmt.Sprintf("%d", sp.Process.User.UID)
		if sp.Process.User.UID == 0 {
			t.Errorf("runs as uid 0")
		}
		raw, _ := json.Marshal(sp)
		if strings.Contains(string(raw), deploy) {
			t.Error("the secret's value is in containerd's spec")
		}
		// The cgroup the kernel enforces, read from the host.
		b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/pids", sp.Linux.CgroupsPath, "pids.max"))
		if te.info.CgroupVersion == "1" && (err != nil || strings.TrimSpace(string(b)) != "64") {
			t.Errorf("pids.max of %s: %q, %v", sp.Linux.CgroupsPath, b, err)
		}
	})

	t.Run("inside", func(t *testing.T) {
		ps := settledProcs(t, te, id)
		if len(ps) < 3 {
			t.Fatalf("expected init, tmux and the agent's processes, saw %d: %v", len(ps), ps)
		}
		for _, p := range ps {
			name := fmt.Sprint(p["name"], "/", p["pid"])
			for _, k := range []string{"cap_eff", "cap_prm", "cap_bnd", "cap_amb", "cap_inh"} {
				if p[k] != "0000000000000000" {
					t.Errorf("%s: %s = %v, want 0", name, k, p[k])
				}
			}
			if p["no_new_privs"] != "1" || p["seccomp"] != "2" {
				t.Errorf("%s: NoNewPrivs %v, Seccomp %v", name, p["no_new_privs"], p["seccomp"])
			}
			if f := strings.Fields(fmt.Sprint(p["uid"])); slices.Contains(f, "0") || (user != "" && f[0] != user) {
				t.Errorf("%s: Uid %v, want %s", name, p["uid"], user)
			}
		}
		var m []string
		execJSON(t, te, id, &m, "/probe/testprobe", "uidmap")
		if len(m) < 3 || m[0] != "0" || m[1] == "0" {
			t.Errorf("uid_map %v: container uid 0 must map to a non-zero host uid", m)
		}
		var s string
		execJSON(t, te, id, &s, "/probe/testprobe", "touch", "/x")
		if !strings.Contains(s, "read-only file system") {
			t.Errorf("touch /x: %q, want read-only file system", s)
		}
		execJSON(t, te, id, &s, "/probe/testprobe", "touch", "/tmp/x")
		if s != "ok" {
			t.Errorf("touch /tmp/x: %q", s)
		}
		execJSON(t, te, id, &s, "/probe/testprobe", "touch", "/home/agent/x")
		if s != "ok" {
			t.Errorf("touch /home/agent/x (the agent's tmpfs home): %q", s)
		}
		execJSON(t, te, id, &s, "/probe/testprobe", "mount")
		if s == "ok" {
			t.Error("mount succeeded inside the container")
		}
		var ifs []string
		execJSON(t, te, id, &ifs, "/probe/testprobe", "netifs")
		if len(ifs) != 1 || ifs[0] != "lo" {
			t.Errorf("interfaces %v, want only lo", ifs)
		}
		var fork struct {
			Started int
			Error   string
		}
		execJSON(t, te, id, &fork, "/probe/testprobe", "fork", "200")
		if fork.Started >= 64 || fork.Error == "ok" {
			t.Errorf("fork loop started %d processes (%q); the pids limit of 64 should stop it", fork.Started, fork.Error)
		}
		var f struct {
			Content  string `json:"content"`
			Mode     uint32 `json:"mode"`
			UID      uint32 `json:"uid"`
			Tmpfs    bool   `json:"tmpfs"`
			WriteErr string `json:"write_err"`
			UIDSelf  uint32 `json:"uid_self"`
		}
		execJSON(t, te, id, &f, "/probe/testprobe", "secret-file", "/run/secrets/deploy")
		if f.Content != deploy || f.Mode != 0o400 || f.UID != f.UIDSelf || !f.Tmpfs || f.WriteErr == "" {
			t.Errorf("/run/secrets/deploy: readable=%t mode %o uid %d (agent %d) tmpfs %t write %q; want the value, 0400, the agent's (through the run's user namespace), tmpfs, not writable", f.Content == deploy, f.Mode, f.UID, f.UIDSelf, f.Tmpfs, f.WriteErr)
		}
		// The image's files belong to the run's namespace: root's are
		// container root's, not nobody's.
		res := agentExec(t, te, id, "stat", "-c", "%u", "/usr/local/bin/runner-agent")
		if strings.TrimSpace(res.Stdout) != "0" {
			t.Errorf("runner-agent is owned by %q inside (%s), want 0 (a remapped snapshot)", res.Stdout, res.Stderr)
		}
	})

	t.Run("readback", func(t *testing.T) {
		obs, err := te.eng.Inspect(ctx(t), id)
		if err != nil {
			t.Fatal(err)
		}
		if obs.State != "running" || obs.HealthStatus == "unhealthy" {
			t.Errorf("state %q health %q", obs.State, obs.HealthStatus)
		}
		rep, err := r.Status(ctx(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range rep.Agents {
			if a.State != "running" || a.Security != "verified" {
				t.Errorf("status %s: state %q security %q %v", a.Agent, a.State, a.Security, a.Violations)
			}
		}
	})

	t.Run("capture and messaging", func(t *testing.T) {
		year := fmt.Sprint(time.Now().Year())
		waitPane(t, r, cfg, "alice", year)
		out := agentExec(t, te, res.IDs["alice"], "runner-agent", "send", "bob", "hello from alice over containerd")
		if out.ExitCode != 0 {
			t.Fatalf("send: exit %d: %s %s", out.ExitCode, out.Stdout, out.Stderr)
		}
		waitPane(t, r, cfg, "bob", "hello from alice over containerd")
	})

	t.Run("attach", func(t *testing.T) {
		tty, err := te.eng.ExecTTY(ctx(t), res.IDs["bob"], []string{"sh", "-c", "runner-agent capture; sleep 1"}, nil, false, 24, 80)
		if err != nil {
			t.Fatal(err)
		}
		defer tty.Close()
		if _, err := tty.Write([]byte("x")); err == nil {
			t.Error("a read-only TTY took input")
		}
		var b strings.Builder
		done := make(chan struct{})
		go func() {
			buf := make([]byte, 4096)
			for {
				n, err := tty.Read(buf)
				b.Write(buf[:n])
				if err != nil {
					close(done)
					return
				}
			}
		}()
		code, err := tty.Wait(ctx(t))
		<-done
		if err != nil || code != 0 || !strings.Contains(b.String(), "hello from alice") {
			t.Errorf("capture on a TTY: exit %d, %v, output %q", code, err, b.String())
		}
	})

	// The workspace is a bind mount the agent writes as its uid, through
	// the run's user namespace; fetch runs git inside and brings the
	// commit to the host.
	t.Run("workspace", func(t *testing.T) {
		bob := res.IDs["bob"]
		sp := ctrdSpec(t, bob)
		owner := strings.Fields(inContainer(t, te, bob, "stat", "-c", "%u", "/workspace"))
		if len(owner) != 1 || owner[0] != fmt.Sprint(sp.Process.User.UID) {
			t.Errorf("/workspace is owned by %v inside, want the agent's uid %d", owner, sp.Process.User.UID)
		}
		inContainer(t, te, bob, "sh", "-c", "cd /workspace && echo bob > bob.txt && git add bob.txt && git commit -qm 'bob on containerd'")
		head := strings.TrimSpace(inContainer(t, te, bob, "git", "-C", "/workspace", "rev-parse", "HEAD"))
		if _, err := r.Fetch(ctx(t), cfg, nil); err != nil {
			t.Fatalf("fetch: %v", err)
		}
		ref := fmt.Sprintf("refs/runner/%s/bob/runner/%s/bob", run, run)
		if got := hostGitT(t, repo, "rev-parse", ref); got != head {
			t.Errorf("%s = %s, want bob's commit %s", ref, got, head)
		}
	})

	t.Run("logs", func(t *testing.T) {
		logs, err := te.eng.Logs(ctx(t), id, 5)
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(logs, "\n"); n > 5 {
			t.Errorf("tail 5 gave %d lines", n)
		}
	})

	t.Run("no-op and destroy", func(t *testing.T) {
		p, err := r.Plan(ctx(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if p.Changes() {
			t.Errorf("a second plan has changes: %+v", p.Actions)
		}
		res2, err := r.Apply(ctx(t), cfg)
		if err != nil || res2.IDs["alice"] != id {
			t.Errorf("re-apply: %v, alice %q (was %q)", err, res2.IDs["alice"], id)
		}
		// Replacing one agent gives it a new container (a new ID), which
		// gets its brief again; the other is kept.
		waitPane(t, r, cfg, "bob", "brief for bob on containerd")
		os.WriteFile(file, []byte(fmt.Sprintf(hcl, run, testImage, bins, testImage, "2", repo)), 0o644)
		cfg2 := load(t, file)
		res3, err := r.Apply(ctx(t), cfg2)
		if err != nil {
			t.Fatalf("apply with bob changed: %v", err)
		}
		if res3.IDs["alice"] != id || res3.IDs["bob"] == res.IDs["bob"] || res3.IDs["bob"] == "" {
			t.Errorf("replace bob: alice %q (was %q), bob %q (was %q)", res3.IDs["alice"], id, res3.IDs["bob"], res.IDs["bob"])
		}
		waitPane(t, r, cfg2, "bob", "brief for bob on containerd")
		res.IDs["bob"] = res3.IDs["bob"]
		n, err := r.Destroy(ctx(t), run)
		if err != nil || n != 2 {
			t.Fatalf("destroy: %d, %v", n, err)
		}
		left, err := te.eng.List(ctx(t), run)
		if err != nil || len(left) != 0 {
			t.Errorf("after destroy: %v, %v", left, err)
		}
		sn := ctrdRaw.SnapshotService("overlayfs")
		for _, name := range []string{"alice", "bob"} {
			if _, err := sn.Stat(ctx(t), res.IDs[name]); err == nil {
				t.Errorf("the snapshot of %s outlived destroy", name)
			}
		}
	})
}

// A created container whose stored spec is weakened is refused and
// removed, never started.
func TestContainerdFailsClosed(t *testing.T) {
	te := containerdEngine(t)
	for name, c := range map[string]struct {
		setting string
		weaken  func(*specs.Spec)
	}{
		"capability":      {"CapAdd", func(sp *specs.Spec) { sp.Process.Capabilities.Bounding = []string{"CAP_SYS_ADMIN"} }},
		"host-userns":     {"UsernsMode", func(sp *specs.Spec) { sp.Linux.UIDMappings[0].HostID = 0 }},
		"no-seccomp":      {"SeccompProfile", func(sp *specs.Spec) { sp.Linux.Seccomp = nil }},
		"writable-rootfs": {"ReadonlyRootfs", func(sp *specs.Spec) { sp.Root.Readonly = false }},
		"extra-mount": {"Mounts[/host]", func(sp *specs.Spec) {
			sp.Mounts = append(sp.Mounts, specs.Mount{Destination: "/host", Type: "bind", Source: "/", Options: []string{"rbind", "rw"}})
		}},
	} {
		t.Run(name, func(t *testing.T) {
			run := runName(t, te, "fc")
			cfg, _ := writeConfig(t, fmt.Sprintf(`
run %q {
  engine = "containerd"
}
agent "a" {
  image   = %q
  command = ["sleep", "infinity"]
}
`, run, testImage))
			destroyAtEnd(t, te, run)
			wk := &weakening{Engine: te.eng, weaken: c.weaken, t: t}
			_, err := (&runner.Runner{Engine: wk, Progress: testWriter{}, Program: program()}).Apply(ctx(t), cfg)
			if err == nil || !strings.Contains(err.Error(), "refusing to start") || !strings.Contains(err.Error(), c.setting+":") {
				t.Fatalf("apply of a weakened container: %v (want a refusal naming %s)", err, c.setting)
			}
			left, _ := te.eng.List(ctx(t), run)
			if len(left) != 0 {
				t.Errorf("the refused container was left: %+v", left)
			}
			if !wk.created {
				t.Error("nothing was created, so nothing was tested")
			}
		})
	}
}

// ociWeakenings are TestApplyFailsClosed's cases on containerd, done to
// the stored OCI spec (weakening) rather than to runner's Spec.
var ociWeakenings = map[string]func(*specs.Spec){
	"no nnp":          func(sp *specs.Spec) { sp.Process.NoNewPrivileges = false },
	"caps kept":       func(sp *specs.Spec) { sp.Process.Capabilities.Bounding = []string{"CAP_CHOWN"} },
	"default seccomp": func(sp *specs.Spec) { sp.Linux.Seccomp = nil },
}

// weakening is the real engine, except that after Create it rewrites the
// container's stored spec through containerd's own API.
type weakening struct {
	engine.Engine
	weaken  func(*specs.Spec)
	t       *testing.T
	created bool
}

func (w *weakening) RunMapping(ctx context.Context, run string) (uids.Mapping, error) {
	return w.Engine.(engine.RunUserNS).RunMapping(ctx, run)
}

func (w *weakening) Create(ctx context.Context, s engine.Spec) (string, error) {
	id, err := w.Engine.Create(ctx, s)
	if err != nil {
		return id, err
	}
	c, err := ctrdRaw.LoadContainer(ctx, id)
	if err != nil {
		return id, err
	}
	err = c.Update(ctx, func(ctx context.Context, _ *ctrd.Client, rec *containers.Container) error {
		sp, err := c.Spec(ctx)
		if err != nil {
			return err
		}
		w.weaken(sp)
		return ctrd.WithSpec(sp)(ctx, nil, rec)
	})
	w.created = err == nil
	return id, err
}
