package runner_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// runner exec and runner shell, on the real engine: the command runs as the
// agent's uid (the container's configured user, never 0), its exit status is
// runner's, it is audited without its arguments, and what it prints reaches
// the operator only through termsafe (plain text without a TTY, a view on one).
func TestExec(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		run := runName(t, te, "exec")
		destroyAtEnd(t, te, run)
		cfg, path := writeConfig(t, fmt.Sprintf(`
run %q {
  %s
}
agent "a" {
  image   = %q
  command = ["sh", "-c", "echo ready; sleep infinity"]
}
`, run, te.accept, testImage))
		r := newRunner(te)
		res, err := r.Apply(ctx(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		c, err := te.raw.ContainerInspect(ctx(t), res.IDs["a"])
		if err != nil {
			t.Fatal(err)
		}
		wantUID, _, _ := strings.Cut(c.Config.User, ":")
		if wantUID == "" || wantUID == "0" {
			t.Fatalf("the container's configured user is %q: the test needs a non-root one", c.Config.User)
		}

		t.Run("uid", func(t *testing.T) {
			out, errOut, err := cli(te, "exec", path, "a", "--", "id", "-u")
			if err != nil {
				t.Fatalf("exec id -u: %v\n%s", err, errOut)
			}
			if got := strings.TrimSpace(string(out)); got != wantUID || got == "0" {
				t.Errorf("exec ran as uid %q; the container's user is %q", got, c.Config.User)
			}
			// From inside too: every id of the process, not just the effective one.
			out, _, err = cli(te, "exec", path, "a", "--", "grep", "-E", "^(Uid|Gid):", "/proc/self/status")
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				f := strings.Fields(l)
				if len(f) != 5 || f[1] == "0" || f[1] != f[2] || f[2] != f[3] || f[3] != f[4] {
					t.Errorf("exec's ids: %q", l)
				}
			}
		})

		t.Run("exit status and streams", func(t *testing.T) {
			out, errOut, err := cli(te, "exec", path, "a", "--", "sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 7")
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 7 {
				t.Errorf("exec of exit 7: %v, want exit status 7", err)
			}
			if string(out) != "to-stdout\n" || !strings.Contains(string(errOut), "to-stderr\n") {
				t.Errorf("stdout %q, stderr %q", out, errOut)
			}
			// No TTY without a terminal on stdin.
			if _, _, err := cli(te, "exec", path, "a", "--", "test", "-t", "0"); err == nil {
				t.Errorf("exec without a terminal gave the command a TTY")
			}
			// Standard input reaches the command, and its end ends it.
			cmd := exec.Command(filepath.Join(bins, "runner"), "exec", path, "a", "--", "tr", "a-z", "A-Z")
			cmd.Env = append(os.Environ(), dockerHostEnv(te)...)
			cmd.Stdin = strings.NewReader("piped in\n")
			if b, err := cmd.Output(); err != nil || string(b) != "PIPED IN\n" {
				t.Errorf("exec with stdin: %q, %v", b, err)
			}
		})

		t.Run("escapes", func(t *testing.T) {
			out, errOut, err := cli(te, "exec", path, "a", "--", "sh", "-c", `printf "$1"; printf "$1" >&2; echo EXEC-MARKER`, "sh", payload)
			if err != nil {
				t.Fatalf("%v: %s", err, errOut)
			}
			if !bytes.Contains(out, []byte("EXEC-MARKER")) {
				t.Fatalf("exec printed %q", out)
			}
			plainSafe(t, "exec stdout", out)
			plainSafe(t, "exec stderr", errOut)

			// On a terminal: a TTY for the command, a view for the operator.
			p := startPTY(t, dockerHostEnv(te), filepath.Join(bins, "runner"), "exec", path, "a", "--", "sh", "-c", `test -t 0 && echo HAS-A-TTY; printf "$1"; echo EXEC-MARKER`, "sh", payload)
			got := p.waitFor("EXEC-MARKER", 1, 60*time.Second)
			p.exit(30 * time.Second)
			if !bytes.Contains(got, []byte("HAS-A-TTY")) {
				t.Errorf("exec on a terminal gave the command no TTY: %q", got)
			}
			viewSafe(t, "exec on a TTY", got)
			if code := p.cmd.ProcessState.ExitCode(); code != 0 {
				t.Errorf("exec on a TTY exited %d", code)
			}
		})

		t.Run("terminal in, pipe out", func(t *testing.T) {
			// stdin a terminal, stdout a pipe: no TTY, and plain text out.
			master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer master.Close()
			unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0)
			n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
			if err != nil {
				t.Fatal(err)
			}
			slave, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer slave.Close()
			cmd := exec.Command(filepath.Join(bins, "runner"), "exec", path, "a", "--", "sh", "-c", `test -t 1 && echo HAS-A-TTY; printf "$1"; echo EXEC-MARKER`, "sh", payload)
			cmd.Env = append(os.Environ(), dockerHostEnv(te)...)
			cmd.Stdin = slave
			out, err := cmd.Output()
			if err != nil || !bytes.Contains(out, []byte("EXEC-MARKER")) {
				t.Fatalf("exec: %v, %q", err, out)
			}
			if bytes.Contains(out, []byte("HAS-A-TTY")) {
				t.Errorf("exec into a pipe gave the command a TTY")
			}
			plainSafe(t, "exec into a pipe", out)
		})

		t.Run("shell", func(t *testing.T) {
			p := startPTY(t, dockerHostEnv(te), filepath.Join(bins, "runner"), "shell", path, "a")
			time.Sleep(500 * time.Millisecond)
			p.typeKeys("echo SHELL-UID=$(id -u)\r")
			p.waitFor("SHELL-UID="+wantUID, 1, 60*time.Second)
			p.typeKeys("exit 3\r")
			p.exit(30 * time.Second)
			if code := p.cmd.ProcessState.ExitCode(); code != 3 {
				t.Errorf("shell exited %d, want the shell's 3", code)
			}
		})

		t.Run("audit", func(t *testing.T) {
			const secret = "s3cr3t-token-in-argv"
			if _, errOut, err := cli(te, "exec", path, "a", "--", "sh", "-c", "true "+secret); err != nil {
				t.Fatalf("%v: %s", err, errOut)
			}
			ev := auditEvents(t, run)
			if strings.Contains(ev, secret) {
				t.Errorf("the audit log holds the command's arguments:\n%s", ev)
			}
			if !strings.Contains(ev, `\"sh\", 2 args (argv sha256 `) {
				t.Errorf("the audit log does not name the program and count the arguments:\n%s", ev)
			}
			var execs, ends int
			for _, l := range strings.Split(ev, "\n") {
				if strings.Contains(l, `"event":"exec"`) {
					execs++
					if !strings.Contains(l, " args (argv sha256 ") || !strings.Contains(l, "as uid "+wantUID) || !strings.Contains(l, "by uid "+strconv.Itoa(os.Getuid())) {
						t.Errorf("exec audit entry lacks who, what or as whom: %s", l)
					}
				}
				if strings.Contains(l, `"event":"exec_end"`) {
					ends++
				}
			}
			// uid (2), exit status (3: 7, tty, stdin), escapes (2), pipe, shell, audit.
			if execs < 10 || ends != execs {
				t.Errorf("%d exec and %d exec_end entries, want at least 10 of each", execs, ends)
			}
			if !strings.Contains(ev, "exit 7 after") {
				t.Errorf("the exit status is not audited")
			}
		})
	})
}
