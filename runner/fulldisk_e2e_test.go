package runner_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runner-dev/runner/internal/audit"
	"github.com/runner-dev/runner/internal/state"
)

// smallStateRoot mounts a tmpfs of size bytes as a state root of its own
// (owned like the suite's, so a rootless daemon reaches it) and unmounts
// it at the end.
func smallStateRoot(t *testing.T, size string) string {
	t.Helper()
	root, err := os.MkdirTemp("", "runner-e2e-full-")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0711", "tmpfs", root).CombinedOutput(); err != nil {
		os.Remove(root)
		t.Fatalf("mount a tmpfs for the state (the suite runs as root): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", root).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", root, err, out)
		}
		os.Remove(root)
	})
	if fi, err := os.Stat(os.Getenv("RUNNER_STATE_DIR")); err == nil {
		st := fi.Sys().(*syscall.Stat_t)
		if err := os.Chown(root, int(st.Uid), int(st.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// fill writes zeros into path until the filesystem has no room left.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			break
		}
	}
	// The last pages of a file may still take a few bytes.
	for _, n := range []int{4096, 512, 64, 1} {
		for {
			if _, err := f.Write(buf[:n]); err != nil {
				break
			}
		}
	}
}

// TestFullDiskStopsTheRelayAndItRecovers: issue 13's full disk. The run's
// state is on a small filesystem; once it is full an audit append tears
// the log's last line and the relay refuses sends (fail closed). Once
// space is freed the relay, restarted by the host services' supervisor,
// cuts the torn line, records that in the chain and serves again: every
// message acknowledged before, during and after is in the operator's
// inbox, and `runner audit --verify` passes and reports the repair.
//
// Rootful Docker only: a rootless daemon lives in rootlesskit's mount
// namespace, which does not see a filesystem mounted after it started, so
// it cannot bind-mount the relay sockets from one.
func TestFullDiskStopsTheRelayAndItRecovers(t *testing.T) {
	onEngine(t, "docker", func(t *testing.T, te *testEngine) {
		root := smallStateRoot(t, "8m")
		run := runName(t, te, "full")
		r := newRunner(te)
		r.StateRoot = root
		st := state.Run{Root: root, Name: run}
		filler := filepath.Join(root, "filler")
		t.Cleanup(func() {
			os.Remove(filler)
			if _, err := r.Destroy(ctx(t), run); err != nil {
				t.Errorf("cleanup destroy %s: %v", run, err)
			}
		})
		cfg, file := writeConfig(t, servicesHCL(run, te, `"operator"`))
		res, err := r.Apply(ctx(t), cfg)
		if err != nil {
			t.Fatalf("apply: %v", err)
		}
		acked := []string{}
		send := func(body string) bool {
			out := agentExec(t, te, res.IDs["a"], "runner-agent", "send", "operator", body)
			if out.ExitCode == 0 {
				acked = append(acked, body)
			}
			return out.ExitCode == 0
		}
		for i := range 3 {
			if !send(fmt.Sprintf("before-%d", i)) {
				t.Fatalf("a cannot message the operator before the disk fills")
			}
		}

		// The disk fills; a writer's audit append is cut short by it.
		fill(t, filler)
		l, err := audit.Open(st.Audit())
		if err != nil {
			t.Fatal(err)
		}
		for l.Append(audit.Event{Event: "attach", Actor: "operator", Target: "a", Detail: strings.Repeat("x", 200)}) == nil {
		}
		l.Close()
		b, _ := os.ReadFile(st.Audit())
		if len(b) == 0 || b[len(b)-1] == '\n' {
			t.Fatalf("the audit log does not end in a torn line after the disk filled (%d bytes)", len(b))
		}
		refused := 0
		for i := 0; i < 20 && refused < 3; i++ {
			if !send(fmt.Sprintf("during-%d", i)) {
				refused++
			} else if refused > 0 {
				t.Fatalf("a send was accepted after one was refused, with the disk still full")
			}
		}
		if refused < 3 {
			t.Fatalf("the relay kept accepting sends with the disk full and its audit log torn")
		}

		// Space frees; the supervisor's next restart repairs and serves.
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		freed := time.Now()
		deadline := freed.Add(90 * time.Second)
		for !send("after-0") {
			if time.Now().After(deadline) {
				t.Fatalf("the relay does not serve again after space was freed; services log:\n%s", readFile(st.ServicesLog()))
			}
			time.Sleep(500 * time.Millisecond)
		}
		t.Logf("serving again %s after space was freed; %d sends refused while full", time.Since(freed).Round(time.Millisecond), refused)
		send("after-1")
		inbox := operatorInbox(t, r, run)
		for _, m := range acked {
			if strings.Count(inbox, "a: "+m+"\n") != 1 {
				t.Errorf("acknowledged message %q is not in the operator's inbox once:\n%s", m, inbox)
			}
		}
		rep, err := audit.VerifyReport(st.Audit())
		if err != nil {
			t.Fatalf("the audit log does not verify after the repair: %v", err)
		}
		if len(rep.Repairs) == 0 || !strings.Contains(rep.Repairs[0].Detail, "cut a torn last line") {
			t.Errorf("the chain does not record the repair: %+v", rep)
		}
		cmd := exec.Command(filepath.Join(bins, "runner"), "audit", file, "--verify")
		cmd.Env = append(append(os.Environ(), dockerHostEnv(te)...), "RUNNER_STATE_DIR="+root)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err = cmd.Run()
		t.Logf("runner audit --verify:\n%s", out.String())
		if err != nil || !strings.Contains(out.String(), "hash chain intact") || !strings.Contains(out.String(), "repaired at seq") {
			t.Errorf("runner audit --verify: %v\n%s", err, out.String())
		}
	})
}
