package relay

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkRelayThroughput: 10 subscribed agents, each sending to the next
// over its own connection. Every message costs a journal fsync and two audit
// fsyncs (send, deliver), so this measures the disk as much as the relay.
func BenchmarkRelayThroughput(b *testing.B) {
	const agents = 10
	ids := make([]string, agents)
	for i := range ids {
		ids[i] = fmt.Sprintf("eng-%d", i)
	}
	h := newHarness(b, func(c *Config) {
		c.Credentials = credentialsFor(b, ids...)
		c.ACL = make(map[string][]string)
		for _, id := range ids {
			c.ACL[id] = []string{"eng-*"}
		}
		c.RateLimit = Rate{PerSecond: 1e9, Burst: 1 << 30}
		c.QueueLimit = maxQueueLimit
	})
	h.start()
	var delivered atomic.Int64
	all := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for _, id := range ids {
		c := h.dial(id)
		wg.Go(func() {
			c.Subscribe(ctx, func(Delivery) error {
				if delivered.Add(1) == int64(b.N) {
					close(all)
				}
				return nil
			})
		})
		h.waitFor("subscribe", func(a auditLine) bool { return a.Event == "subscribe" && a.Actor == id })
	}
	senders := make([]*Client, agents)
	for i, id := range ids {
		senders[i] = h.dial(id)
	}
	b.ResetTimer()
	start := time.Now()
	var sendWG sync.WaitGroup
	for i, c := range senders {
		n := b.N / agents
		if i < b.N%agents {
			n++
		}
		sendWG.Go(func() {
			for range n {
				if _, err := c.Send(ids[(i+1)%agents], "benchmark message: a line of status from one agent to the next"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	sendWG.Wait()
	select {
	case <-all:
	case <-time.After(time.Minute):
		b.Fatalf("delivered %d of %d", delivered.Load(), b.N)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
