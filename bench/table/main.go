// Command table turns `go test -bench` output into the one table `make
// bench` prints: every figure a benchmark reported, with the goal it is
// held to (issue 13's and the egress issue's) and whether it met it.
//
//	go test -bench . ./bench/ | go run ./bench/table
//
// Lines that are not benchmark results pass through to stderr, so a failed
// benchmark's output is not lost.
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
// limit.
type goal struct {
	limit   float64
	atLeast bool
	text    string
}

// goals by metric unit, as the benchmarks report them. A figure without
// one is printed for its own sake (peers, inputs like the disk's fsync
// rate).
var goals = map[string]goal{
	"apply50/par-run50": {limit: 1.2, text: "≤ 1.2× parallel docker run"},
	"apply10/par-run10": {limit: 1.2, text: "≤ 1.2× parallel docker run"},
	"apply10/compose10": {limit: 1.0, text: "< docker-compose up -d"},
	"status-50-s":       {limit: 1.0, text: "≤ 1 s"},
	"destroy-50-s":      {limit: 10, text: "≤ 10 s"},
	"reapply-10-s":      {limit: 0.1, text: "< 100 ms"},
	"reapply-s":         {limit: 0.1, text: "< 100 ms"},
	"p50-ms":            {limit: 5, text: "≤ 5 ms"},
	"p99-ms":            {limit: 20, text: "≤ 20 ms"},
	"ratio":             {limit: 0.8, atLeast: true, text: "≥ 0.8 of direct"},
	"added-p50-µs":      {limit: 1000, text: "≤ 1 ms"},
	"status50/status10": {limit: 5 * 1.25, text: "linear: ≤ 5× (+25%) of 10 agents"},
	"cpu-%core":         {limit: 5, text: "< 5% of a core for 50 idle agents"},
	"rss-MiB/agent":     {limit: 8, text: "< 8 MiB per idle agent"},
	"procs/agent":       {limit: 5.99, text: "< 6 processes per idle agent"},
}

type row struct {
	bench, metric string
	value         float64
}

func main() {
	var rows []row
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			fmt.Fprintln(os.Stderr, line)
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
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].bench < rows[j].bench })
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BENCHMARK\tFIGURE\tVALUE\tGOAL\tMET")
	met, missed := 0, 0
	for _, r := range rows {
		g, ok := goals[r.metric]
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
}
