package shim

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"syscall"
	"time"
)

// An operator's attach runs `runner-agent attach --id ID` in the container
// through the engine's exec API; it becomes the tmux client (exec, same
// pid) with RUNNER_ATTACH_ID=ID in its environment. The engine does not end
// an exec's process when its client goes away, so on detach the runner
// runs `runner-agent attach --end ID`, which ends every process carrying
// that ID. Without it each detached attach left a tmux client behind in the
// container, slowing the agent's tmux and counting against its pids limit.

// EnvAttachID marks the processes of one operator attach.
const EnvAttachID = "RUNNER_ATTACH_ID"

var attachID = regexp.MustCompile(`^[0-9a-f]{16,64}$`)

// AttachArgv is the tmux client of an operator's attach: read-only unless
// write.
func AttachArgv(socket string, write bool) []string {
	argv := []string{"tmux", "-u", "-S", socket, "attach-session", "-t", SessionName}
	if !write {
		// ignore-size: a watcher's small terminal must not shrink the
		// agent's window.
		argv = append(argv, "-f", "read-only,ignore-size")
	}
	return argv
}

func cmdAttach(args []string, stderr io.Writer) int {
	fs, socket := flags("attach", stderr)
	id := fs.String("id", "", "this attach's `ID` (16-64 hex digits)")
	end := fs.String("end", "", "end the attach with this `ID` instead")
	write := fs.Bool("write", false, "a client that may type")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 || (*id == "") == (*end == "") {
		fmt.Fprintln(stderr, "usage: runner-agent attach --id ID [--write] | --end ID")
		return ExitUsage
	}
	if *end != "" {
		if !attachID.MatchString(*end) {
			fmt.Fprintf(stderr, "runner-agent: attach --end %q: not an attach id\n", *end)
			return ExitUsage
		}
		n := endAttach(*end, 2*time.Second)
		fmt.Fprintf(stderr, "runner-agent: attach %s: %d processes ended\n", *end, n)
		return 0
	}
	if !attachID.MatchString(*id) {
		fmt.Fprintf(stderr, "runner-agent: attach --id %q: not an attach id\n", *id)
		return ExitUsage
	}
	argv := AttachArgv(*socket, *write)
	path, err := exec.LookPath(argv[0])
	if err != nil {
		fmt.Fprintf(stderr, "runner-agent: attach: %v\n", err)
		return ExitNotFound
	}
	err = syscall.Exec(path, argv, append(os.Environ(), EnvAttachID+"="+*id))
	fmt.Fprintf(stderr, "runner-agent: attach: exec %s: %v\n", path, err)
	return ExitNotExecutable
}

// endAttach sends SIGTERM to every process of this uid marked with id, and
// SIGKILL to those still there after grace; it returns how many it found.
func endAttach(id string, grace time.Duration) int {
	pids := attachProcs(id)
	found := len(pids)
	for _, p := range pids {
		syscall.Kill(p, syscall.SIGTERM)
	}
	deadline := time.Now().Add(grace)
	for len(pids) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		pids = slices.DeleteFunc(pids, func(p int) bool {
			st, _, ok := procStat(p)
			return !ok || st == 'Z'
		})
	}
	for _, p := range pids {
		syscall.Kill(p, syscall.SIGKILL)
	}
	return found
}

// attachProcs lists the processes whose environment carries id.
func attachProcs(id string) []int {
	want := []byte(EnvAttachID + "=" + id)
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		for v := range bytes.SplitSeq(env, []byte{0}) {
			if bytes.Equal(v, want) {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}
