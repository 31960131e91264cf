package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// servicesChild is the pid of the run's `runner services child` (0: none).
func servicesChild(run string, not int) int {
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range dirs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		argv := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		n := len(argv)
		if n >= 5 && argv[n-1] == run && argv[n-3] == "child" && argv[n-4] == "services" {
			var pid int
			fmt.Sscan(strings.Split(p, "/")[2], &pid)
			if pid != not {
				return pid
			}
		}
	}
	return 0
}

// BenchmarkServicesRestart: the run's host-services child (relay, recorder,
// check-ins) is SIGKILLed once per iteration, after it has served long
// enough to restart without backoff; reports, median over iterations,
// relay-ms (kill until the operator's send is accepted again) and pane-ms
// (kill until a message sent after it is in the agent's pane, which also
// waits for the agent's shim to reconnect). The goal is both under 1000.
func BenchmarkServicesRestart(b *testing.B) {
	r, cfg, _, done := benchRun(b, 1)
	defer done()
	ctx := context.Background()
	run := cfg.Run.Name
	var relayT, paneT []float64
	for i := 0; i < b.N; i++ {
		time.Sleep(6 * time.Second) // past the supervisor's healthy window
		child := servicesChild(run, 0)
		if child == 0 {
			b.Fatal("no services child")
		}
		msg := fmt.Sprintf("after-kill-%d", i)
		start := time.Now()
		if err := syscall.Kill(child, syscall.SIGKILL); err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := r.Send(ctx, cfg, "a-1", msg); err == nil {
				break
			}
			if time.Since(start) > time.Minute {
				b.Fatal("the relay never came back")
			}
			time.Sleep(5 * time.Millisecond)
		}
		relayT = append(relayT, float64(time.Since(start).Microseconds())/1000)
		for {
			out, err := r.Capture(ctx, cfg, "a-1", 20)
			if err == nil && strings.Contains(out, "[from operator] "+msg) {
				break
			}
			if time.Since(start) > time.Minute {
				b.Fatalf("%s never reached the pane", msg)
			}
			time.Sleep(5 * time.Millisecond)
		}
		paneT = append(paneT, float64(time.Since(start).Microseconds())/1000)
		if servicesChild(run, child) == 0 {
			b.Fatal("no new child")
		}
	}
	b.ReportMetric(median(relayT), "relay-ms")
	b.ReportMetric(median(paneT), "pane-ms")
	b.ReportMetric(0, "ns/op")
}

func median(xs []float64) float64 {
	sort.Float64s(xs)
	return xs[len(xs)/2]
}
