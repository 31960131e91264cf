package shim

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// endAttach ends the processes of one attach, and only those.
func TestEndAttach(t *testing.T) {
	const id, other = "00112233445566778899aabbccddeeff", "ffeeddccbbaa99887766554433221100"
	start := func(mark string) *exec.Cmd {
		cmd := exec.Command("sleep", "60")
		cmd.Env = append(os.Environ(), EnvAttachID+"="+mark)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	mine, notMine := start(id), start(other)
	exited := make(chan error, 1)
	go func() { exited <- mine.Wait() }()
	if n := endAttach(id, 2*time.Second); n != 1 {
		t.Errorf("endAttach found %d processes, want 1", n)
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("the attach's process is still running")
	}
	if err := notMine.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("another attach's process was ended too: %v", err)
	}
}

func TestAttachUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"--id", "short"}, {"--end", "not-hex-not-hex-"}, {"--id", strings.Repeat("a", 32), "--end", strings.Repeat("b", 32)}} {
		if _, _, code := runMain(append([]string{"attach"}, args...)...); code != ExitUsage {
			t.Errorf("attach %q: exit %d, want %d", args, code, ExitUsage)
		}
	}
	if got := AttachArgv("/s", false); strings.Join(got, " ") != "tmux -u -S /s attach-session -t agent -f read-only,ignore-size" {
		t.Errorf("read-only argv %q", got)
	}
	if got := AttachArgv("/s", true); strings.Contains(strings.Join(got, " "), "read-only") {
		t.Errorf("--write argv %q", got)
	}
}
