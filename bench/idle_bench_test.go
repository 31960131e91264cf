package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runner-dev/runner/internal/profile"
	"github.com/runner-dev/runner/internal/state"
)

// idleWindow is how long BenchmarkIdle50 measures the idle agents.
const idleWindow = 60 * time.Second

// BenchmarkIdle50 applies 50 agents whose command is an idle loop (sleep
// infinity), lets them settle, and measures over idleWindow what runner
// adds for them: CPU of every process in the containers but the agent's
// command (the cgroup's cpuacct, so short-lived processes count) plus the
// host-services process (relay, recorder); memory (RSS and PSS) and
// processes per agent. Reported:
//
//	cpu-%core        runner's CPU for all 50 agents, % of one core (goal < 5)
//	container-%core  of which the containers' (runner-agent, tmux, streams)
//	services-%core   of which the host-services processes' (supervisor and child)
//	rss-MiB/agent    RSS of the container's processes but the command (goal < 8)
//	pss-MiB/agent    the same, shared pages divided among their users
//	procs/agent      processes in the container but the command (goal < 6)
//	services-rss-MiB the host-services processes
//	shim-%core       the engine's per-container shims (containerd-shim), for reference
//	forks/s          processes created on the whole machine per second (noisy)
//
// It runs twice: with the engine's health check as runner sets it
// (profile.HealthTimings: an exec of `runner-agent health` in each container,
// about 40 ms of CPU each here), and with its interval set to a day, to show
// what the rest costs.
func BenchmarkIdle50(b *testing.B) {
	b.Run("health=default", func(b *testing.B) { benchIdle(b, 50) })
	b.Run("health=24h", func(b *testing.B) {
		saved := profile.HealthTimings
		profile.HealthTimings.Interval = 24 * time.Hour
		defer func() { profile.HealthTimings = saved }()
		benchIdle(b, 50)
	})
}

func benchIdle(b *testing.B, n int) {
	for i := 0; i < b.N; i++ {
		r, cfg, eng, done := benchRunCommand(b, n, `["sleep", "infinity"]`)
		st := state.Run{Root: r.StateRoot, Name: cfg.Run.Name}
		waitSubscribed(b, st, n)
		time.Sleep(10 * time.Second) // streams started, first checks done
		list, err := eng.List(context.Background(), cfg.Run.Name)
		if err != nil || len(list) != n {
			b.Fatalf("%d containers (%v), want %d", len(list), err, n)
		}
		var cgs []string
		var shims []int
		for _, c := range list {
			pid := containerPID(b, c.ID)
			cgs = append(cgs, cpuacctDir(b, pid))
			if pp := ppid(pid); pp > 1 {
				shims = append(shims, pp)
			}
		}
		services := servicesPID(b, st)
		type sample struct {
			container, cmd, services, shim time.Duration
			forks                          int
			at                             time.Time
		}
		take := func() sample {
			var s sample
			for _, cg := range cgs {
				s.container += cgUsage(b, cg)
				for _, p := range cgProcs(cg) {
					if isAgentCommand(p) {
						s.cmd += procCPU(p)
					}
				}
			}
			for _, p := range tree(services) {
				s.services += procCPU(p)
			}
			for _, p := range shims {
				s.shim += procCPU(p)
			}
			s.forks, s.at = lastPID(), time.Now()
			return s
		}
		s0 := take()
		time.Sleep(idleWindow)
		s1 := take()
		wall := s1.at.Sub(s0.at)
		pct := func(d time.Duration) float64 { return 100 * float64(d) / float64(wall) }
		container := (s1.container - s0.container) - (s1.cmd - s0.cmd)
		svc := s1.services - s0.services
		var rss, pss float64
		procs := 0
		for _, cg := range cgs {
			for _, p := range cgProcs(cg) {
				if isAgentCommand(p) {
					continue
				}
				procs++
				rss += procKiB(p, "status", "VmRSS:")
				pss += procKiB(p, "smaps_rollup", "Pss:")
			}
		}
		b.ReportMetric(pct(container+svc), "cpu-%core")
		b.ReportMetric(pct(container), "container-%core")
		b.ReportMetric(pct(svc), "services-%core")
		b.ReportMetric(rss/1024/float64(n), "rss-MiB/agent")
		b.ReportMetric(pss/1024/float64(n), "pss-MiB/agent")
		b.ReportMetric(float64(procs)/float64(n), "procs/agent")
		var svcRSS float64
		for _, p := range tree(services) {
			svcRSS += procKiB(p, "status", "VmRSS:")
		}
		b.ReportMetric(svcRSS/1024, "services-rss-MiB")
		b.ReportMetric(pct(s1.shim-s0.shim), "shim-%core")
		forks := s1.forks - s0.forks
		if forks < 0 { // pid_max wrapped
			data, _ := os.ReadFile("/proc/sys/kernel/pid_max")
			max, _ := strconv.Atoi(strings.TrimSpace(string(data)))
			forks += max
		}
		b.ReportMetric(float64(forks)/wall.Seconds(), "forks/s")
		done()
	}
}

// tree is pid and its descendants (the host services: a supervisor and
// the child that serves).
func tree(pid int) []int {
	out := []int{pid}
	ents, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	for _, e := range ents {
		if p, err := strconv.Atoi(e.Name()); err == nil {
			children[ppid(p)] = append(children[ppid(p)], p)
		}
	}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// cpuacctDir is the cpuacct cgroup directory of pid (cgroup v1 or v2).
func cpuacctDir(b *testing.B, pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		for _, ctl := range strings.Split(f[1], ",") {
			if ctl == "cpuacct" {
				return filepath.Join("/sys/fs/cgroup", f[1], f[2])
			}
		}
		if f[0] == "0" && f[1] == "" {
			if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
				return filepath.Join("/sys/fs/cgroup", f[2])
			}
		}
	}
	b.Fatalf("no cpuacct cgroup for pid %d", pid)
	return ""
}

// cgUsage is the cgroup's CPU time so far.
func cgUsage(b *testing.B, dir string) time.Duration {
	if data, err := os.ReadFile(filepath.Join(dir, "cpuacct.usage")); err == nil {
		ns, _ := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
		return time.Duration(ns)
	}
	data, err := os.ReadFile(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
			us, _ := strconv.ParseInt(v, 10, 64)
			return time.Duration(us) * time.Microsecond
		}
	}
	b.Fatalf("no CPU usage in %s", dir)
	return 0
}

func cgProcs(dir string) []int {
	data, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	var out []int
	for _, f := range strings.Fields(string(data)) {
		if p, err := strconv.Atoi(f); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// isAgentCommand: the agents' command, sleep infinity.
func isAgentCommand(pid int) bool {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return string(data) == "sleep\x00infinity\x00"
}

// procStat returns the fields of /proc/PID/stat after the command name.
func procStat(pid int) []string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(data[i+1:]))
}

// procCPU is pid's user and system time (clock ticks of 10ms).
func procCPU(pid int) time.Duration {
	f := procStat(pid)
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}

func ppid(pid int) int {
	f := procStat(pid)
	if len(f) < 2 {
		return 0
	}
	p, _ := strconv.Atoi(f[1])
	return p
}

// procKiB reads a "Key: N kB" line of /proc/PID/FILE.
func procKiB(pid int, file, key string) float64 {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			var kb float64
			fmt.Sscan(strings.TrimSpace(v), &kb)
			return kb
		}
	}
	return 0
}

// lastPID is the most recently created pid on the machine (/proc/loadavg).
func lastPID() int {
	data, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(data))
	if len(f) < 5 {
		return 0
	}
	p, _ := strconv.Atoi(f[4])
	return p
}

func servicesPID(b *testing.B, st state.Run) int {
	pidb, err := os.ReadFile(st.ServicesPID())
	if err != nil {
		b.Fatal(err)
	}
	p, err := strconv.Atoi(strings.Fields(string(pidb))[0])
	if err != nil {
		b.Fatal(err)
	}
	return p
}
