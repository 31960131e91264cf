package main

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Probes of the helpers the operator's commands run in a container, done
// as the agent would: same uid, no capabilities.

// cmdlines lists every process's argv, joined by spaces.
func cmdlines() []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || len(b) == 0 {
			continue
		}
		out = append(out, strings.TrimSpace(string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))))
	}
	return out
}

// hijack waits (up to wait) for a process whose argv starts with the
// words of match, stops it, writes stdout and stderr into its standard
// output and error through /proc/PID/fd, then kills it (kill) or lets it
// go on. It reports what each step did.
func hijack(match, stdout, stderr string, kill bool, wait time.Duration) map[string]string {
	want := []byte(strings.ReplaceAll(match, " ", "\x00") + "\x00")
	self := strconv.Itoa(os.Getpid())
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			if e.Name() == self {
				continue
			}
			b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if err != nil || !bytes.Contains(b, want) {
				continue
			}
			pid, _ := strconv.Atoi(e.Name())
			out := map[string]string{"pid": e.Name(), "stop": errString(syscall.Kill(pid, syscall.SIGSTOP))}
			out["stdout"] = writeFD(pid, 1, stdout)
			out["stderr"] = writeFD(pid, 2, stderr)
			if kill {
				out["kill"] = errString(syscall.Kill(pid, syscall.SIGKILL))
			} else {
				out["cont"] = errString(syscall.Kill(pid, syscall.SIGCONT))
			}
			return out
		}
		time.Sleep(time.Millisecond)
	}
	return map[string]string{"error": "no process " + match + " appeared"}
}

func writeFD(pid, fd int, s string) string {
	f, err := os.OpenFile("/proc/"+strconv.Itoa(pid)+"/fd/"+strconv.Itoa(fd), os.O_WRONLY, 0)
	if err != nil {
		return errString(err)
	}
	defer f.Close()
	_, err = f.WriteString(s)
	return errString(err)
}
