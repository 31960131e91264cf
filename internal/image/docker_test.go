package image

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestImageInDocker builds the image with the local Docker daemon (classic
// builder, no registry) and runs it hardened the way the runner does. It
// runs with RUNNER_TEST_DOCKER=1 and always in CI (CI=true), where a missing
// engine fails it; everything it creates is named imgtest-*.
func TestImageInDocker(t *testing.T) {
	if os.Getenv("RUNNER_TEST_DOCKER") != "1" && os.Getenv("CI") != "true" {
		t.Skip("set RUNNER_TEST_DOCKER=1 to build and run the image with docker (CI always does)")
	}
	docker := func(stdin []byte, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "docker", args...)
		cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
		if stdin != nil {
			cmd.Stdin = bytes.NewReader(stdin)
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return string(out), fmt.Errorf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out), nil
	}
	must := func(stdin []byte, args ...string) string {
		t.Helper()
		out, err := docker(stdin, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	ref := "localhost/imgtest-runner-agent:" + fmt.Sprint(os.Getpid())
	name := "imgtest-" + fmt.Sprint(os.Getpid())
	t.Cleanup(func() {
		docker(nil, "rm", "-f", name)
		docker(nil, "rmi", "-f", ref)
	})

	var ctxTar bytes.Buffer
	digest, err := Context(&ctxTar, staticAgent(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	must(ctxTar.Bytes(), "build", "-q", "-t", ref, "-")
	if got := strings.TrimSpace(must(nil, "image", "inspect", "--format", `{{index .Config.Labels "runner.image-digest"}}`, ref)); got != digest {
		t.Errorf("label %q, want %q", got, digest)
	}
	must(nil, "run", "-d", "--name", name, "--read-only", "--cap-drop", "ALL",
		"--security-opt", "no-new-privileges", "--network", "none", "--user", "1000:1000",
		"--tmpfs", "/tmp:rw,size=64m,mode=1777",
		"--tmpfs", "/home/agent:rw,size=64m,uid=1000,gid=1000,mode=0700",
		ref, "sh", "-c", "printf 'h\\303\\251llo \\342\\234\\223\\n'; while :; do date; sleep 1; done")

	deadline := time.Now().Add(15 * time.Second)
	for {
		out, _ := docker(nil, "exec", name, "runner-agent", "capture")
		if strings.Contains(out, "héllo ✓") && strings.Contains(out, "UTC") {
			break
		}
		if time.Now().After(deadline) {
			logs, _ := docker(nil, "logs", name)
			t.Fatalf("capture never showed the command's output: %q\nlogs: %s", out, logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if out := must(nil, "exec", name, "runner-agent", "status"); !strings.HasPrefix(out, `{"tmux":true,"pane_dead":false,`) {
		t.Errorf("status = %s", out)
	}
	must(nil, "exec", name, "git", "init", "-q", "/tmp/x")
	must(nil, "exec", "-w", "/tmp/x", name, "sh", "-c", "echo hi > f && git add f && git commit -qm first && git clone -q /tmp/x /tmp/y && test -f /tmp/y/f")
	if out := must(nil, "exec", name, "id"); !strings.HasPrefix(out, "uid=1000(agent) gid=1000(agent)") {
		t.Errorf("id = %s", out)
	}

	start := time.Now()
	must(nil, "stop", name)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("docker stop took %s: SIGTERM not handled", d)
	}
	if code := strings.TrimSpace(must(nil, "inspect", "--format", "{{.State.ExitCode}}", name)); code != "0" {
		t.Errorf("exit code after stop = %s", code)
	}
}
