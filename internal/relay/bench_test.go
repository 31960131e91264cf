package relay

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The relay's benchmarks run it in a process of its own (proc_test.go), with
// its state and audit log on this machine's disk (never tmpfs), agent eng-i
// sending to eng-(i+1). Figures: accepted msgs/s with 10 and 50 senders
// beside the disk's own fsync rate; send→ok latency at 10% of the maximum;
// delivery against acceptance at 50%; memory at rest, under load and after
// 100k and 1M messages.

const benchBody = "benchmark message: a line of status from one agent to the next"

// diskDir is a fresh directory on the disk the state would be on.
func diskDir(tb testing.TB) string {
	tb.Helper()
	base := "/var/tmp"
	var st syscall.Statfs_t
	if err := syscall.Statfs(base, &st); err != nil {
		tb.Fatal(err)
	}
	if st.Type == 0x01021994 { // TMPFS_MAGIC
		tb.Fatalf("%s is tmpfs: the relay benchmarks need a real disk", base)
	}
	dir, err := os.MkdirTemp(base, "relay-bench-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func agentIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("eng-%d", i)
	}
	return ids
}

// ringRelay is a relay process for n agents, each allowed to send to the next.
func ringRelay(tb testing.TB, n int) (*relayProc, []string) {
	ids := agentIDs(n)
	acl := map[string][]string{}
	for i, id := range ids {
		acl[id] = []string{ids[(i+1)%n]}
	}
	p := newRelayProc(tb, diskDir(tb), append([]string{Operator}, ids...), acl)
	p.start()
	return p, ids
}

// BenchmarkDiskFsync is the disk's own rate: appends of one journal-sized
// line, each followed by fsync, from one writer and from four (each its own
// file). One message per fsync could go no faster.
func BenchmarkDiskFsync(b *testing.B) {
	for _, writers := range []int{1, 4} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			dir := diskDir(b)
			line := []byte(strings.Repeat("x", 200) + "\n")
			var wg sync.WaitGroup
			lats := make([][]time.Duration, writers)
			b.ResetTimer()
			start := time.Now()
			for w := range writers {
				n := b.N / writers
				if w < b.N%writers {
					n++
				}
				f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(w)), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				wg.Go(func() {
					for range n {
						t0 := time.Now()
						if _, err := f.Write(line); err != nil {
							b.Error(err)
							return
						}
						if err := f.Sync(); err != nil {
							b.Error(err)
							return
						}
						lats[w] = append(lats[w], time.Since(t0))
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "fsyncs/s")
			all := slices.Concat(lats...)
			b.ReportMetric(pct(all, 50), "fsync-p50-ms")
			b.ReportMetric(pct(all, 99), "fsync-p99-ms")
		})
	}
}

// sendLoad has each of ids send to the next, n messages in all, at rate
// messages/s in all (0: as fast as each gets ok), and returns every send→ok
// latency.
func sendLoad(tb testing.TB, p *relayProc, ids []string, n int, rate float64) []time.Duration {
	tb.Helper()
	clients := make([]*Client, len(ids))
	for i, id := range ids {
		clients[i] = p.dial(id)
	}
	lats := make([][]time.Duration, len(ids))
	var wg sync.WaitGroup
	start := time.Now()
	for i, c := range clients {
		k := n / len(ids)
		if i < n%len(ids) {
			k++
		}
		to := ids[(i+1)%len(ids)]
		wg.Go(func() {
			var every time.Duration
			if rate > 0 {
				every = time.Duration(float64(time.Second) * float64(len(ids)) / rate)
			}
			// Senders start spread over one interval, not all at once.
			next := start.Add(every * time.Duration(i) / time.Duration(len(ids)))
			lat := make([]time.Duration, 0, k)
			for range k {
				if every > 0 {
					time.Sleep(time.Until(next))
					next = next.Add(every)
				}
				t0 := time.Now()
				body := strconv.FormatInt(t0.UnixNano(), 10) + " " + benchBody
				if _, err := c.Send(to, body); err != nil {
					tb.Error(err)
					return
				}
				lat = append(lat, time.Since(t0))
			}
			lats[i] = lat
		})
	}
	wg.Wait()
	return slices.Concat(lats...)
}

// pct is the p-th percentile of ds, in ms; it sorts ds.
func pct(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return float64(ds[min(len(ds)-1, int(float64(len(ds))*p/100))].Microseconds()) / 1000
}

// BenchmarkRelayAccept: the most durable messages/s the relay accepts, from
// 10 and from 50 senders each sending as fast as it gets ok (nobody
// subscribed: acceptance alone). Every ok means the message and its audit
// line were fsynced.
func BenchmarkRelayAccept(b *testing.B) {
	for _, senders := range []int{10, 50} {
		b.Run(fmt.Sprintf("senders=%d", senders), func(b *testing.B) {
			p, ids := ringRelay(b, senders)
			b.ResetTimer()
			start := time.Now()
			lats := sendLoad(b, p, ids, b.N, 0)
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
			b.ReportMetric(pct(lats, 99), "ok-p99-ms")
		})
	}
}

// subscribeAll acks every delivery to ids and calls got with its send time
// (from the body), until the benchmark ends.
func subscribeAll(tb testing.TB, p *relayProc, ids []string, got func(sent time.Time)) {
	var wg sync.WaitGroup
	for _, id := range ids {
		c := p.dial(id)
		wg.Go(func() {
			c.Subscribe(tb.Context(), func(d Delivery) error {
				ns, _, _ := strings.Cut(d.Body, " ")
				if v, err := strconv.ParseInt(ns, 10, 64); err == nil {
					got(time.Unix(0, v))
				}
				return nil
			})
		})
	}
	tb.Cleanup(func() {
		p.kill()
		wg.Wait()
	})
}

// BenchmarkRelayPaced, with 10 senders: first the maximum accepted rate
// (max-msgs/s, over 2s), then, each on a fresh relay, send→ok at 10% of
// it (ok-p50-ms, ok-p99-ms, 3s), and at 50% of it with every agent
// subscribed and acking: accepted/s, delivered/s over the same 5s and
// send→delivered p99 (deliver-p99-ms).
func BenchmarkRelayPaced(b *testing.B) {
	const senders = 10
	{
		var maxRate float64
		b.Run("max", func(b *testing.B) {
			p, ids := ringRelay(b, senders)
			start := time.Now()
			n := 0
			for time.Since(start) < 2*time.Second {
				sendLoad(b, p, ids, 2000, 0)
				n += 2000
			}
			maxRate = float64(n) / time.Since(start).Seconds()
			b.ReportMetric(maxRate, "max-msgs/s")
		})
		b.Run("rate=10%", func(b *testing.B) {
			p, ids := ringRelay(b, senders)
			rate := maxRate / 10
			lats := sendLoad(b, p, ids, int(rate*3), rate)
			b.ReportMetric(rate, "msgs/s")
			b.ReportMetric(pct(lats, 50), "ok-p50-ms")
			b.ReportMetric(pct(lats, 99), "ok-p99-ms")
		})
		b.Run("rate=50%", func(b *testing.B) {
			p, ids := ringRelay(b, senders)
			rate := maxRate / 2
			var mu sync.Mutex
			var lat []time.Duration
			var delivered atomic.Int64
			var window atomic.Bool
			subscribeAll(b, p, ids, func(sent time.Time) {
				if window.Load() {
					delivered.Add(1)
				}
				mu.Lock()
				lat = append(lat, time.Since(sent))
				mu.Unlock()
			})
			const secs = 5
			window.Store(true)
			start := time.Now()
			oks := sendLoad(b, p, ids, int(rate*secs), rate)
			window.Store(false)
			el := time.Since(start).Seconds()
			// The last ones, still on their way, count as late.
			time.Sleep(100 * time.Millisecond)
			mu.Lock()
			deliveredLat := slices.Clone(lat)
			mu.Unlock()
			late := max(0, len(oks)-len(deliveredLat))
			for len(deliveredLat) < len(oks) {
				deliveredLat = append(deliveredLat, time.Hour)
			}
			// Accepted but not delivered within 100ms of the last send: a
			// p99 of 3600000 means more than 1% of them.
			b.ReportMetric(float64(late), "undelivered")
			b.ReportMetric(float64(len(oks))/el, "accepted/s")
			b.ReportMetric(float64(delivered.Load())/el, "delivered/s")
			b.ReportMetric(pct(deliveredLat, 99), "deliver-p99-ms")
			b.ReportMetric(pct(deliveredLat, 50), "deliver-p50-ms")
		})
	}
}

// BenchmarkRelayMemory1M: 50 agents, all subscribed and acking, each
// sending to the next with at most 50 of its messages undelivered (so the
// relay runs as fast as it delivers). The relay's resident memory at rest
// (rss-rest-MiB), its largest sample under load (rss-load-MiB), after
// 100 000 and after 1 000 000 messages (rss-100k-MiB, rss-1M-MiB; set
// RELAY_BENCH_MESSAGES for a shorter run), at rest again afterwards, and
// the journal's largest size on disk (journal-max-MiB: compaction bounds it).
func BenchmarkRelayMemory1M(b *testing.B) {
	const agents, window = 50, 50
	total := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("RELAY_BENCH_MESSAGES")); err == nil && v > 0 {
		total = v
	}
	for range b.N {
		p, ids := ringRelay(b, agents)
		sem := make([]chan struct{}, agents)
		for i := range sem {
			sem[i] = make(chan struct{}, window)
		}
		var delivered atomic.Int64
		var wg sync.WaitGroup
		for i, id := range ids {
			c := p.dial(id)
			from := (i + agents - 1) % agents // the one agent that sends to id
			wg.Go(func() {
				c.Subscribe(b.Context(), func(Delivery) error {
					<-sem[from]
					delivered.Add(1)
					return nil
				})
			})
		}
		time.Sleep(time.Second)
		rest, _ := p.memMiB()
		b.ReportMetric(rest, "rss-rest-MiB")

		journal := filepath.Join(p.cfg.StateDir, "journal")
		var loadMax, journalMax, at100k float64
		sample := func() {
			rss, _ := p.memMiB()
			loadMax = max(loadMax, rss)
			if st, err := os.Stat(journal); err == nil {
				journalMax = max(journalMax, float64(st.Size())/(1<<20))
			}
		}
		stop := make(chan struct{})
		var sampler sync.WaitGroup
		sampler.Go(func() {
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					sample()
					if at100k == 0 && delivered.Load() >= min(100_000, int64(total)) {
						at100k, _ = p.memMiB()
					}
				}
			}
		})
		start := time.Now()
		var senders sync.WaitGroup
		for i, id := range ids {
			c := p.dial(id)
			to := ids[(i+1)%agents]
			n := total / agents
			if i < total%agents {
				n++
			}
			senders.Go(func() {
				for range n {
					sem[i] <- struct{}{}
					if _, err := c.Send(to, benchBody); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		senders.Wait()
		for delivered.Load() < int64(total) && !b.Failed() {
			time.Sleep(10 * time.Millisecond)
		}
		el := time.Since(start).Seconds()
		close(stop)
		sampler.Wait()
		sample()
		end, _ := p.memMiB()
		time.Sleep(2 * time.Second)
		after, _ := p.memMiB()
		b.ReportMetric(float64(total)/el, "msgs/s")
		b.ReportMetric(loadMax, "rss-load-MiB")
		b.ReportMetric(at100k, "rss-100k-MiB")
		b.ReportMetric(end, "rss-1M-MiB")
		b.ReportMetric(after, "rss-rest-after-MiB")
		b.ReportMetric(journalMax, "journal-max-MiB")
		p.kill()
		wg.Wait()
	}
}
