package runner_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/pkg/stdcopy"
)

// probeSyscalls is how many syscall numbers the probe calls (x86_64 and
// arm64 number theirs below 470 today).
const probeSyscalls = 470

// TestSeccompStricterThanEngineDefault: every syscall number the engine's
// OWN default profile refuses, an agent container refuses too. The probe
// calls every number with every argument -1 in a container under the
// engine's default profile and in an agent container (runner's profile),
// both without capabilities and with no-new-privileges, and compares: a
// number is refused when it fails with EPERM or ENOSYS (runc answers
// ENOSYS for numbers newer than the profile knows). If the default refuses
// one and ours lets it reach the kernel, ours is not stricter.
func TestSeccompStricterThanEngineDefault(t *testing.T) {
	names := syscallNames(t)
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		id := probeAgent(t, te, "seccomp")
		var ours map[string]string
		execJSON(t, te, id, &ours, "/probe/testprobe", "syscalls", strconv.Itoa(probeSyscalls))
		dflt := defaultProfileProbe(t, te)

		refused := func(r string) bool { return r == "errno 1" || r == "errno 38" }
		name := func(n int) string {
			if s := names[n]; s != "" {
				return fmt.Sprintf("%s (%d)", s, n)
			}
			return strconv.Itoa(n)
		}
		var looser, stricter []string
		for n := 0; n < probeSyscalls; n++ {
			k := strconv.Itoa(n)
			d, o := dflt[k], ours[k]
			if d == "" || o == "" {
				t.Fatalf("syscall %s: no result (default %q, ours %q)", name(n), d, o)
			}
			switch {
			case refused(d) && !refused(o):
				looser = append(looser, fmt.Sprintf("%s: default %s, ours %s", name(n), d, o))
			case refused(o) && !refused(d):
				stricter = append(stricter, name(n))
			}
		}
		for _, l := range looser {
			t.Errorf("the engine's default refuses what runner's profile lets through: %s", l)
		}
		// Controls: the probe tells the profiles apart (ours refuses
		// ptrace, which the default allows), and the default lets ordinary
		// calls through.
		if len(stricter) == 0 {
			t.Error("control: runner's profile refuses nothing the default allows; the probe cannot tell the profiles apart")
		}
		if dflt["39"] != "errno 0" || ours["39"] != "errno 0" { // getpid
			t.Errorf("control: getpid under the default %q, under ours %q; want errno 0", dflt["39"], ours["39"])
		}
		t.Logf("refused only by runner's profile: %s", strings.Join(stricter, ", "))
	})
}

// defaultProfileProbe runs the syscall probe in a container with the engine's
// default seccomp profile and otherwise the agents' settings that matter
// (no capabilities, no-new-privileges, a non-root uid).
func defaultProfileProbe(t *testing.T, te *testEngine) map[string]string {
	t.Helper()
	c := ctx(t)
	pids := int64(64)
	created, err := te.raw.ContainerCreate(c, &container.Config{
		Image:      testImage,
		User:       "40000:40000",
		Entrypoint: []string{"/probe/testprobe"},
		Cmd:        []string{"syscalls", strconv.Itoa(probeSyscalls)},
		Labels:     map[string]string{"runner.test": "seccomp-default"},
	}, &container.HostConfig{
		CapDrop:        []string{"ALL"},
		SecurityOpt:    []string{"no-new-privileges:true"}, // no seccomp= : the engine's default
		ReadonlyRootfs: true,
		NetworkMode:    "none",
		Resources:      container.Resources{PidsLimit: &pids},
		Mounts:         []mount.Mount{{Type: mount.TypeBind, Source: bins, Target: "/probe", ReadOnly: true}},
	}, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	defer te.raw.ContainerRemove(c, created.ID, container.RemoveOptions{Force: true})
	if err := te.raw.ContainerStart(c, created.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	waitC, errC := te.raw.ContainerWait(c, created.ID, container.WaitConditionNotRunning)
	select {
	case w := <-waitC:
		if w.StatusCode != 0 {
			t.Fatalf("probe under the default profile exited %d", w.StatusCode)
		}
	case err := <-errC:
		t.Fatal(err)
	}
	rc, err := te.raw.ContainerLogs(c, created.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&stdout, &stderr, rc); err != nil {
		t.Fatal(err)
	}
	// Confirm the engine applied its default: the probe's own status.
	info, err := te.raw.ContainerInspect(c, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range info.HostConfig.SecurityOpt {
		if strings.HasPrefix(o, "seccomp") {
			t.Fatalf("the default-profile container has %q", o)
		}
	}
	var out map[string]string
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("probe output %q (%s): %v", stdout.String(), stderr.String(), err)
	}
	return out
}

// syscallNames maps this architecture's syscall numbers to names, read
// from golang.org/x/sys/unix's table, for messages only.
func syscallNames(t *testing.T) map[int]string {
	out := map[int]string{}
	dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "golang.org/x/sys").Output()
	if err != nil {
		return out
	}
	f, err := os.Open(filepath.Join(strings.TrimSpace(string(dir)), "unix", "zsysnum_linux_"+runtime.GOARCH+".go"))
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, num, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || !strings.HasPrefix(name, "SYS_") {
			continue
		}
		if n, err := strconv.Atoi(strings.TrimSpace(num)); err == nil {
			out[n] = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(name), "SYS_"))
		}
	}
	return out
}
