// Command table turns `go test -bench` output into the one table `make
// bench` prints: every figure a benchmark reported, with the goal it is
// held to (issue 13's and the egress issue's) and whether it met it.
//
//	go test -bench . ./bench/ | go run ./bench/table
//
// A benchmark that failed or was skipped is listed under the table (its
// goals count as not met), and the command then exits 1; everything else
// that is not a result is left to the raw output (make bench keeps it in
// bench-results.txt).
package main

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
)

// goal is what a figure is held to: at most (or, with atLeast, at least)
// limit. bench is a prefix of the benchmark's name ("" for any).
type goal struct {
	bench, metric string
	limit         float64
	atLeast       bool
	text          string
}

// goals are issue 13's (scale and speed) and the egress issue's. A figure
// without one is printed for its own sake (peers, the disk's fsync rate,
// parts of a total).
var goals = []goal{
	{"Scale", "apply50/par-run50", 1.2, false, "≤ 1.2× 50 parallel docker run"},
	{"Scale", "apply10/par-run10", 1.2, false, "≤ 1.2× 10 parallel docker run"},
	{"Scale", "apply10/compose10", 1.0, false, "< docker-compose up -d"},
	{"Scale", "status-50-s", 1.0, false, "≤ 1 s"},
	{"Scale", "destroy-50-s", 10, false, "≤ 10 s"},
	{"Scale", "reapply-10-s", 0.1, false, "< 100 ms"},
	{"Scale", "status50/status10", 5 * 1.25, false, "linear: ≤ 5× (+25%) of 10"},
	{"Apply10", "reapply-s", 0.1, false, "< 100 ms"},
	{"SendToPane", "p50-ms", 5, false, "≤ 5 ms"},
	{"SendToPane", "p99-ms", 20, false, "≤ 20 ms"},
	{"Idle50", "cpu-%core", 5, false, "< 5% of a core for 50"},
	{"Idle50", "pss-MiB/agent", 8, false, "< 8 MiB per agent"},
	{"Idle50", "procs/agent", 5.99, false, "< 6 per agent"},
	{"ServicesRestart", "relay-ms", 1000, false, "back within 1 s"},
	{"ServicesRestart", "pane-ms", 1000, false, "delivering within 1 s"},
	{"RelayAccept", "msgs/s", 20000, true, "≥ 20 000 durable msgs/s"},
	{"RelayPaced/rate=10%", "ok-p99-ms", 5, false, "send→ok p99 ≤ 5 ms"},
	{"RelayPaced/rate=50%", "deliver-p99-ms", 50, false, "send→delivered p99 ≤ 50 ms"},
	{"RelayPaced/rate=50%", "undelivered", 0, false, "delivered/s = accepted/s"},
	{"RelayMemory1M", "rss-rest-MiB", 30, false, "≤ 30 MiB"},
	{"RelayMemory1M", "rss-load-MiB", 30, false, "≤ 30 MiB"},
	{"RelayMemory1M", "rss-1M/100k", 1.1, false, "within 10% of 100k"},
	{"RelayMemory50", "rss-MiB", 30, false, "≤ 30 MiB"},
	{"Download256MiB", "ratio", 0.8, true, "≥ 0.8 of direct"},
	{"ConnectSetup", "added-p50-µs", 1000, false, "≤ 1 ms"},
}

func goalFor(r row) (goal, bool) {
	for _, g := range goals {
		if g.metric == r.metric && strings.HasPrefix(r.bench, g.bench) {
			return g, true
		}
	}
	return goal{}, false
}

type row struct {
	bench, metric string
	value         float64
}

func main() {
	var rows []row
	var problems []string
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		t := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(t, "--- FAIL:"), strings.HasPrefix(t, "--- SKIP:"), strings.HasPrefix(t, "FAIL\t"), strings.HasPrefix(t, "panic:"):
			problems = append(problems, t)
			continue
		}
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := f[0]
		if i := strings.LastIndex(name, "-"); i > 0 {
			name = name[:i] // the GOMAXPROCS suffix
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil || f[i+1] == "ns/op" || f[i+1] == "B/op" || f[i+1] == "allocs/op" {
				continue
			}
			rows = append(rows, row{bench: strings.TrimPrefix(name, "Benchmark"), metric: f[i+1], value: v})
		}
	}
	rows = append(rows, derived(rows)...)
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].bench < rows[j].bench })
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BENCHMARK\tFIGURE\tVALUE\tGOAL\tMET")
	met, missed := 0, 0
	for _, r := range rows {
		g, ok := goalFor(r)
		verdict, text := "", ""
		if ok {
			text = g.text
			if (g.atLeast && r.value >= g.limit) || (!g.atLeast && r.value <= g.limit) {
				verdict = "yes"
				met++
			} else {
				verdict = "NO"
				missed++
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.bench, r.metric, strconv.FormatFloat(r.value, 'g', 4, 64), text, verdict)
	}
	tw.Flush()
	fmt.Printf("\n%d figures; %d goals met, %d not met\n", len(rows), met, missed)
	if len(problems) > 0 {
		fmt.Printf("\n%d benchmark(s) failed or were skipped (their figures are missing above):\n", len(problems))
		for _, p := range problems {
			fmt.Println("  " + p)
		}
		os.Exit(1)
	}
}

// derived are figures the goals name that are ratios of two reported ones.
func derived(rows []row) []row {
	find := func(bench, metric string) (float64, bool) {
		for _, r := range rows {
			if strings.HasPrefix(r.bench, bench) && r.metric == metric {
				return r.value, true
			}
		}
		return 0, false
	}
	var out []row
	if a, ok := find("RelayMemory1M", "rss-1M-MiB"); ok {
		if b, ok := find("RelayMemory1M", "rss-100k-MiB"); ok && b > 0 {
			out = append(out, row{bench: "RelayMemory1M", metric: "rss-1M/100k", value: a / b})
		}
	}
	return out
}
