package runner_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/runner-dev/runner/internal/uids"
)

// TestAgentUIDs: every agent without a user attribute runs as a uid of its
// own that no host account has, and a process of one agent's uid on the
// host can reach neither another agent's credential nor its tmux server;
// an explicit user is honoured (issue 7, section 3).
func TestAgentUIDs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test runs probes on the host as the agents' uids, which needs root")
	}
	host, err := uids.ReadHost("/")
	if err != nil {
		t.Fatal(err)
	}
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		run := runName(t, te, "uids")
		ws := t.TempDir()
		os.Chmod(ws, 0o755)
		os.Chmod(filepath.Dir(ws), 0o755) // reachable by a rootless daemon's uid
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
agent "b" {
  image   = %q
  command = ["sleep", "infinity"]
  mount {
    source = %q
    target = "/probe"
  }
  mount {
    source    = %q
    target    = "/ws"
    read_only = false
  }
}
agent "c" {
  image   = %q
  command = ["sleep", "infinity"]
  user    = "2345:2346"
}
`, run, te.accept, testImage, bins, testImage, bins, ws, testImage))
		destroyAtEnd(t, te, run)
		var progress strings.Builder
		r := newRunner(te)
		r.Progress = &progress
		res, err := r.Apply(ctx(t), cfg)
		if err != nil {
			t.Fatalf("apply: %v", err)
		}
		// b's writable mount is the operator's (0755): apply says b cannot
		// write it, with b's uid and the fix.
		if !strings.Contains(progress.String(), "b: warning: it runs as uid") || !strings.Contains(progress.String(), "setfacl -m u:") {
			t.Errorf("apply did not warn that b cannot write %s:\n%s", ws, progress.String())
		}
		if !strings.Contains(res.Plan.String(), "! b: warning: it runs as uid") {
			t.Errorf("plan does not warn that b cannot write %s:\n%s", ws, res.Plan)
		}

		type agent struct {
			uid, hostUID uint32
			pid          int
		}
		got := map[string]agent{}
		for _, name := range []string{"a", "b", "c"} {
			c, err := te.raw.ContainerInspect(ctx(t), res.IDs[name])
			if err != nil {
				t.Fatal(err)
			}
			uid, gid, ok := uids.ParseUser(c.Config.User)
			if !ok {
				t.Fatalf("%s: Config.User %q is not numeric", name, c.Config.User)
			}
			if uid != gid && name != "c" {
				t.Errorf("%s: uid %d, gid %d: runner gives one number to both", name, uid, gid)
			}
			// The kernel's view from the host of the container's init.
			st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.State.Pid))
			if err != nil {
				t.Fatal(err)
			}
			hostUID := statusID(t, string(st), "Uid")
			got[name] = agent{uid: uid, hostUID: hostUID, pid: c.State.Pid}

			if name == "c" {
				if c.Config.User != "2345:2346" {
					t.Errorf("c sets user = \"2345:2346\"; Config.User = %q", c.Config.User)
				}
				continue
			}
			if !uids.InRange(uid) {
				t.Errorf("%s: uid %d is not one runner allocates (%d-%d)", name, uid, uids.First, uids.Last)
			}
			if n, ok := host.Users[hostUID]; ok {
				t.Errorf("%s runs as host uid %d, the host account %q", name, hostUID, n)
			}
			if n, ok := host.Groups[statusID(t, string(st), "Gid")]; ok {
				t.Errorf("%s runs with the host group %q", name, n)
			}
			if !te.info.Rootless && !te.info.UserNS && hostUID != uid {
				t.Errorf("%s: rootful, container uid %d but host uid %d", name, uid, hostUID)
			}

			// Inside: every process runs as that uid, and on a rootless
			// engine the uid map sends it to the host uid seen above.
			var ps []map[string]any
			execJSON(t, te, res.IDs[name], &ps, "/probe/testprobe", "procs")
			for _, p := range ps {
				if strings.HasPrefix(fmt.Sprint(p["name"]), "runc:") {
					continue
				}
				for _, f := range strings.Fields(fmt.Sprint(p["uid"])) {
					if f != strconv.FormatUint(uint64(uid), 10) {
						t.Errorf("%s: process %v runs as uid %v, want %d", name, p["name"], p["uid"], uid)
						break
					}
				}
			}
			if te.info.Rootless || te.info.UserNS {
				var m []string
				execJSON(t, te, res.IDs[name], &m, "/probe/testprobe", "uidmap")
				// The probe prints the map's numbers flat, three a line.
				var flat []uint64
				for _, f := range m {
					v, _ := strconv.ParseUint(f, 10, 32)
					flat = append(flat, v)
				}
				mapped, found := uint64(0), false
				for i := 0; i+2 < len(flat); i += 3 {
					if uint64(uid) >= flat[i] && uint64(uid) < flat[i]+flat[i+2] {
						mapped, found = flat[i+1]+uint64(uid)-flat[i], true
					}
				}
				if !found || mapped != uint64(hostUID) {
					t.Errorf("%s: uid_map %v maps uid %d to %d (found %v); the host sees %d", name, m, uid, mapped, found, hostUID)
				}
			}
		}
		// The allocated uid is a working user in the image: it has a name,
		// owns its home, and git can commit as it.
		for _, argv := range [][]string{
			{"id", "-un"},
			{"touch", "/home/agent/x", "/tmp/x"},
			{"git", "-C", "/tmp", "init", "-q", "repo"},
			{"git", "-C", "/tmp/repo", "commit", "-q", "--allow-empty", "-m", "first"},
		} {
			r, err := te.eng.Exec(ctx(t), res.IDs["a"], "", argv)
			if err != nil || r.ExitCode != 0 {
				t.Errorf("a: %v: exit %d %v: %s%s", argv, r.ExitCode, err, r.Stdout, r.Stderr)
			} else if argv[0] == "id" && strings.TrimSpace(r.Stdout) != "agent" {
				t.Errorf("a: id -un = %q, want agent (a passwd line for its uid)", r.Stdout)
			}
		}
		if got["a"].uid == got["b"].uid || got["a"].hostUID == got["b"].hostUID {
			t.Fatalf("a and b share a uid: %+v %+v", got["a"], got["b"])
		}

		// status and its JSON show each agent's uid.
		rep, err := newRunner(te).Status(ctx(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range rep.Agents {
			if s.IDs == nil || s.IDs.UID != got[s.Agent].uid || s.IDs.HostUID != got[s.Agent].hostUID {
				t.Errorf("status %s: ids %+v, want uid %d host %d", s.Agent, s.IDs, got[s.Agent].uid, got[s.Agent].hostUID)
			}
			if want := map[bool]string{true: "config", false: "allocated"}[s.Agent == "c"]; s.IDs != nil && s.IDs.Source != want {
				t.Errorf("status %s: uid_source %q, want %q", s.Agent, s.IDs.Source, want)
			}
		}
		js, _ := json.Marshal(rep)
		if !strings.Contains(string(js), fmt.Sprintf(`"uid":%d`, got["a"].uid)) {
			t.Errorf("status JSON lacks a's uid: %s", js)
		}

		// A process of a's uid on the host: b's credential and tmux
		// server are out of its reach; its own are not (so the probe
		// can tell).
		creds := filepath.Join(os.Getenv("RUNNER_STATE_DIR"), "runs", run, "private", "creds")
		probe := func(uid uint32, args ...string) map[string]string {
			t.Helper()
			cmd := exec.Command(filepath.Join(bins, "testprobe"), append([]string{"reach"}, args...)...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{}}}
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("probe as uid %d: %v", uid, err)
			}
			var m map[string]string
			if err := json.Unmarshal(out, &m); err != nil {
				t.Fatalf("probe output %q: %v", out, err)
			}
			return m
		}
		// Through the agent's own command (sleep): its init, runner-agent, is
		// execute-only and so not dumpable, which would refuse any other
		// process whatever the uid.
		root := func(a string) string { return fmt.Sprintf("/proc/%d/root", descendant(t, got[a].pid, "sleep")) }
		bPaths := []string{
			"read:" + root("b") + "/run/secrets/runner-credential",
			"dial:" + root("b") + "/tmp/runner-tmux/default",
			"read:" + filepath.Join(creds, "b"),
		}
		for k, v := range probe(got["a"].hostUID, bPaths...) {
			if v == "ok" {
				t.Errorf("as a's uid (host %d), %s is reachable", got["a"].hostUID, k)
			}
		}
		// Controls, so a wrong path cannot pass as a refusal: root
		// reaches all of b's, and on a rootful engine a's uid reaches its
		// own. (Under rootless the kernel refuses even that: the agent's
		// processes are not dumpable to a host process outside their user
		// namespace.)
		for k, v := range probe(0, bPaths...) {
			if v != "ok" {
				t.Errorf("control: as root, %s: %s", k, v)
			}
		}
		if !te.info.Rootless && !te.info.UserNS {
			for k, v := range probe(got["a"].hostUID,
				"read:"+root("a")+"/run/secrets/runner-credential",
				"dial:"+root("a")+"/tmp/runner-tmux/default") {
				if v != "ok" {
					t.Errorf("control: as a's uid, its own %s: %s", k, v)
				}
			}
		}
		// The credential file is a's alone: 0400, owned by a's host uid.
		fi, err := os.Stat(filepath.Join(creds, "a"))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != got["a"].hostUID || fi.Mode().Perm() != 0o400 {
			t.Errorf("a's credential: owner %d mode %v, want %d and 0400", st.Uid, fi.Mode().Perm(), got["a"].hostUID)
		}
	})
}

// statusID is the real id of a /proc/PID/status line ("Uid:\t1\t1\t1\t1").
func statusID(t *testing.T, status, key string) uint32 {
	t.Helper()
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, err := strconv.ParseUint(f[0], 10, 32)
				if err == nil {
					return uint32(n)
				}
			}
		}
	}
	t.Fatalf("no %s in %q", key, status)
	return 0
}

// descendant is the host pid of a process named comm below pid.
func descendant(t *testing.T, pid int, comm string) int {
	t.Helper()
	parent := map[int]int{}
	name := map[int]string{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(b)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < open {
			continue
		}
		f := strings.Fields(s[closing+1:])
		p, _ := strconv.Atoi(strings.TrimSpace(s[:open]))
		if len(f) < 2 {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		parent[p], name[p] = pp, s[open+1:closing]
	}
	for p, n := range name {
		if n != comm {
			continue
		}
		for q := parent[p]; q > 1; q = parent[q] {
			if q == pid {
				return p
			}
		}
	}
	t.Fatalf("no %s process below pid %d", comm, pid)
	return 0
}
