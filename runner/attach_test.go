package runner_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// hostTmux drives a tmux server of the test's own on the host, the way an
// operator's terminal would run runner.
type hostTmux struct {
	t    *testing.T
	sock string
	env  []string
}

func newHostTmux(t *testing.T, te *testEngine) *hostTmux {
	dir, err := os.MkdirTemp("", "runner-e2e-tmux-")
	if err != nil {
		t.Fatal(err)
	}
	h := &hostTmux{t: t, sock: filepath.Join(dir, "sock"), env: append(os.Environ(), "TMUX_TMPDIR="+dir, "TMUX=")}
	h.env = append(h.env, dockerHostEnv(te)...)
	t.Cleanup(func() {
		h.run("kill-server")
		os.RemoveAll(dir)
	})
	return h
}

func (h *hostTmux) run(args ...string) string {
	cmd := exec.Command("tmux", append([]string{"-S", h.sock}, args...)...)
	cmd.Env = h.env
	out, _ := cmd.CombinedOutput()
	return string(out)
}

// waitHost polls a host pane until it shows want.
func (h *hostTmux) waitHost(target, want string) string {
	h.t.Helper()
	var out string
	for i := 0; i < 150; i++ {
		out = h.run("capture-pane", "-p", "-t", target)
		if strings.Contains(out, want) {
			return out
		}
		time.Sleep(100 * time.Millisecond)
	}
	h.t.Fatalf("host pane %s never showed %q:\n%s", target, want, out)
	return ""
}

func TestAttach(t *testing.T) {
	forEveryBackend(t, func(t *testing.T, te *testEngine) {
		run := runName(t, te, "att")
		destroyAtEnd(t, te, run)
		cfg, path := writeConfig(t, fmt.Sprintf(`
run %q {
  %s
}
agent "a" {
  image   = %q
  command = ["sh", "-c", "echo ready-to-type; cat"]
}
`, run, te.accept, testImage))
		r := newRunner(te)
		if _, err := r.Apply(ctx(t), cfg); err != nil {
			t.Fatal(err)
		}
		h := newHostTmux(t, te)

		// Read-only: what the operator types never reaches the agent.
		h.run("new-session", "-d", "-s", "ro", "-x", "120", "-y", "30", "--", filepath.Join(bins, "runner"), "attach", path, "a")
		h.waitHost("ro", "ready-to-type")
		h.run("send-keys", "-t", "ro", "-l", "typed-while-read-only")
		h.run("send-keys", "-t", "ro", "Enter")
		time.Sleep(time.Second)
		if out, _ := r.Capture(ctx(t), cfg, "a", 100); strings.Contains(out, "typed-while-read-only") {
			t.Fatalf("keys typed into a read-only attach reached the agent:\n%s", out)
		}
		h.run("send-keys", "-t", "ro", "q")
		time.Sleep(500 * time.Millisecond)
		rep, err := r.Status(ctx(t), cfg)
		if err != nil || rep.Agents[0].Process != "running" {
			t.Fatalf("detaching must leave the agent running: %+v %v", rep.Agents, err)
		}

		// --write: the keys arrive, and the session is audited.
		h.run("new-session", "-d", "-s", "rw", "-x", "120", "-y", "30", "--", filepath.Join(bins, "runner"), "attach", path, "a", "--write")
		h.waitHost("rw", "ready-to-type")
		h.run("send-keys", "-t", "rw", "-l", "typed-with-write")
		h.run("send-keys", "-t", "rw", "Enter")
		waitPane(t, r, cfg, "a", "typed-with-write")
		h.run("send-keys", "-t", "rw", "C-b", "d")
		time.Sleep(time.Second)
		ev := auditEvents(t, run)
		if !strings.Contains(ev, `"event":"attach"`) || !strings.Contains(ev, "write access") || !strings.Contains(ev, `"event":"detach"`) {
			t.Errorf("write access is not in the audit log")
		}
	})
}

func TestWatch(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		run := runName(t, te, "watch")
		destroyAtEnd(t, te, run)
		// Each agent tries to pass as the next one: its tmux server's
		// titles, its pane's title, OSC 2 and the screen title sequence.
		retitle := func(self, other string) string {
			return fmt.Sprintf(`["sh", "-c", %q]`, "sleep 1; tmux set -g set-titles on; tmux set -g set-titles-string "+other+"; tmux select-pane -T "+other+
				"; while :; do printf '\\033]2;"+other+"\\007\\033k"+other+"\\033\\\\'; echo I am "+self+", retitled; sleep 1; done")
		}
		cfg, path := writeConfig(t, teamConfig(run, te, map[string]string{"x": retitle("x", "y"), "y": retitle("y", "z"), "z": retitle("z", "x")}))
		r := newRunner(te)
		if _, err := r.Apply(ctx(t), cfg); err != nil {
			t.Fatal(err)
		}
		h := newHostTmux(t, te)
		cmd := exec.Command(filepath.Join(bins, "runner"), "watch", path, "--detach")
		cmd.Env = h.env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("runner watch: %v\n%s", err, out)
		}
		session := "runner-watch-" + run
		// watch uses the default socket under TMUX_TMPDIR.
		list := func() string {
			c := exec.Command("tmux", "list-panes", "-t", session, "-F", "#{pane_title}")
			c.Env = h.env
			out, _ := c.CombinedOutput()
			return string(out)
		}
		for _, a := range []string{"x", "y", "z"} {
			c := exec.Command("tmux", "capture-pane", "-p", "-t", session+"."+map[string]string{"x": "0", "y": "1", "z": "2"}[a])
			c.Env = h.env
			deadline := time.Now().Add(45 * time.Second)
			for {
				out, _ := c.CombinedOutput()
				if strings.Contains(string(out), "I am "+a) {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("pane of %s never showed its output:\n%s", a, out)
					break
				}
				time.Sleep(200 * time.Millisecond)
				c = exec.Command(c.Path, c.Args[1:]...)
				c.Env = h.env
			}
		}
		// The agents have printed their retitling at the watch a few times.
		for _, a := range []string{"x", "y", "z"} {
			c := exec.Command("tmux", "capture-pane", "-p", "-t", session+"."+map[string]string{"x": "0", "y": "1", "z": "2"}[a])
			c.Env = h.env
			for try := 0; try < 100; try++ {
				out, _ := c.CombinedOutput()
				if strings.Count(string(out), "retitled") >= 3 {
					break
				}
				time.Sleep(200 * time.Millisecond)
				c = exec.Command(c.Path, c.Args[1:]...)
				c.Env = h.env
			}
		}
		// What the border shows is the true name, and so is the title.
		var labels []string
		for i := range 3 {
			c := exec.Command("tmux", "display-message", "-p", "-t", fmt.Sprintf("%s.%d", session, i), "#{E:pane-border-format}")
			c.Env = h.env
			out, _ := c.CombinedOutput()
			labels = append(labels, strings.TrimSpace(string(out)))
		}
		if strings.Join(labels, ",") != "x,y,z" {
			t.Errorf("watch pane borders show %q, want x,y,z", labels)
		}
		if titles := strings.Fields(list()); strings.Join(titles, ",") != "x,y,z" {
			t.Errorf("watch panes are titled %v, want x,y,z", titles)
		}
		kill := exec.Command("tmux", "kill-session", "-t", session)
		kill.Env = h.env
		kill.Run()
		time.Sleep(500 * time.Millisecond)
		rep, err := r.Status(ctx(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range rep.Agents {
			if a.State != "running" || a.Process != "running" {
				t.Errorf("closing watch touched %s: %+v", a.Agent, a)
			}
		}
	})
}
