package bench

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// paneWatch is a tmux control-mode client attached (read-only) to an
// agent's tmux server from the host, through the container's own socket
// (/proc/PID/root/...): it sees what the pane prints as %output the moment
// tmux reads it, which is when the text appears in the pane for anyone
// attached.
type paneWatch struct {
	cmd *exec.Cmd

	mu    sync.Mutex
	tail  []byte // the pane's recent output, decoded
	want  string
	count int            // how many times want must be in tail
	seen  chan time.Time // gets the time want was seen
}

func watchPane(b *testing.B, sock string) *paneWatch {
	b.Helper()
	cmd := exec.Command("tmux", "-u", "-f", "/dev/null", "-S", sock, "-C", "attach-session", "-r", "-t", "=agent")
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	w := &paneWatch{cmd: cmd}
	b.Cleanup(func() { in.Close(); cmd.Wait() })
	go func() {
		br := bufio.NewReaderSize(out, 1<<20)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if rest, ok := strings.CutPrefix(line, "%output "); ok {
				if _, v, ok := strings.Cut(rest, " "); ok {
					w.add(unoctal(strings.TrimSuffix(v, "\n")), time.Now())
				}
			}
		}
	}()
	return w
}

func (w *paneWatch) add(p []byte, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.tail = append(w.tail, p...)
	if len(w.tail) > 16<<10 {
		w.tail = w.tail[len(w.tail)-8<<10:]
	}
	if w.seen != nil && strings.Count(string(w.tail), w.want) >= w.count {
		w.seen <- at
		w.seen = nil
	}
}

// expect arms the watch: the returned channel gets the time text is in
// the pane's recent output n times.
func (w *paneWatch) expect(text string, n int) <-chan time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch := make(chan time.Time, 1)
	w.want, w.count, w.seen = text, n, ch
	if strings.Count(string(w.tail), text) >= n {
		ch <- time.Now()
		w.seen = nil
	}
	return ch
}

// unoctal decodes tmux's %output value (\ooo escapes).
func unoctal(s string) []byte {
	out := make([]byte, 0, len(s))
	isOct := func(c byte) bool { return c >= '0' && c <= '7' }
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOct(s[i+1]) && isOct(s[i+2]) && isOct(s[i+3]) {
			out = append(out, (s[i+1]-'0')<<6|(s[i+2]-'0')<<3|(s[i+3]-'0'))
			i += 3
			continue
		}
		out = append(out, s[i])
	}
	return out
}

// BenchmarkSendToPane measures delivery into a pane: from the operator's
// `runner send` returning (the relay acknowledged it as durable) to the text
// appearing in the recipient's pane, seen by a control-mode client attached
// to that pane's tmux (see paneWatch). The shim's deliberate pause before
// Enter (100ms) comes after the text appears, so it is not in the figure.
// Reports p50-ms and p99-ms, and send-p50-ms/send-p99-ms from the start of
// the send (its own round trip included).
func BenchmarkSendToPane(b *testing.B) {
	r, cfg, eng, done := benchRun(b, 2)
	defer done()
	ctx := context.Background()
	list, _ := eng.List(ctx, cfg.Run.Name)
	var id string
	for _, c := range list {
		if c.Agent == "a-1" {
			id = c.ID
		}
	}
	pid := containerPID(b, id)
	w := watchPane(b, fmt.Sprintf("/proc/%d/root/tmp/runner-tmux/default", pid))
	var lat, full []time.Duration
	time.Sleep(3 * time.Second) // the shim holds messages for a pane's first 2s
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		token := fmt.Sprintf("lat-%d-%d", i, time.Now().UnixNano())
		seen := w.expect(token, 1)
		start := time.Now()
		if _, err := r.Send(ctx, cfg, "a-1", token); err != nil {
			b.Fatal(err)
		}
		sent := time.Now()
		var at time.Time
		select {
		case at = <-seen:
		case <-time.After(30 * time.Second):
			b.Fatalf("%s never arrived", token)
		}
		lat = append(lat, max(at.Sub(sent), 0))
		full = append(full, at.Sub(start))
		// Untimed: let this delivery finish (Enter sent, acked: cat prints
		// the line a second time) so the next send does not queue behind it.
		select {
		case <-w.expect(token, 2):
		case <-time.After(30 * time.Second):
			b.Fatalf("%s was not submitted", token)
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.StopTimer()
	pct := func(d []time.Duration, p int) float64 {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return ms(d[min(len(d)*p/100, len(d)-1)])
	}
	b.ReportMetric(pct(lat, 50), "p50-ms")
	b.ReportMetric(pct(lat, 90), "p90-ms")
	b.ReportMetric(pct(lat, 95), "p95-ms")
	b.ReportMetric(pct(lat, 99), "p99-ms")
	b.ReportMetric(pct(full, 50), "send-p50-ms")
	b.ReportMetric(pct(full, 99), "send-p99-ms")
}
