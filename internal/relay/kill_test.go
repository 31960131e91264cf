package relay

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/runner-dev/runner/internal/audit"
)

// TestSIGKILLDuringBurstLosesNothing: 10 senders send as fast as they can
// (each message with a client_id, retried after any error until ok) while
// the relay process is killed with SIGKILL again and again and started
// again. Every message that got ok is delivered, none twice under two
// ids, each sender's in the order it sent them, and the audit chain holds.
func TestSIGKILLDuringBurstLosesNothing(t *testing.T) {
	const senders, kills = 10, 5
	ids := []string{Operator, "sink"}
	acl := map[string][]string{}
	for i := range senders {
		id := fmt.Sprintf("eng-%d", i)
		ids = append(ids, id)
		acl[id] = []string{"sink"}
	}
	p := newRelayProc(t, t.TempDir(), ids, acl)
	p.start()

	var mu sync.Mutex
	acked := map[string]int{} // sender -> last seq that got ok
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range senders {
		id := fmt.Sprintf("eng-%d", i)
		wg.Go(func() {
			var c *Client
			for seq := 1; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				m := Message{To: "sink", Body: fmt.Sprintf("%s %d", id, seq), ClientID: fmt.Sprintf("%s-%d", id, seq)}
				for {
					if c == nil {
						c, _ = p.dialErr(id)
						if c == nil {
							time.Sleep(10 * time.Millisecond)
							continue
						}
					}
					if _, err := c.SendMessage(m); err == nil {
						break
					}
					c.Close()
					c = nil
				}
				mu.Lock()
				acked[id] = seq
				mu.Unlock()
			}
		})
	}

	type got struct {
		id   uint64
		body string
	}
	var dmu sync.Mutex
	var delivered []got
	var last uint64
	subCtx, cancelSub := context.WithCancel(context.Background())
	var subWG sync.WaitGroup
	subWG.Go(func() {
		for subCtx.Err() == nil {
			c, err := p.dialErr("sink")
			if err != nil {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			c.Subscribe(subCtx, func(d Delivery) error {
				dmu.Lock()
				defer dmu.Unlock()
				if d.ID > last { // a repeat after a crash is dropped, as PROTOCOL.md says
					last = d.ID
					delivered = append(delivered, got{d.ID, d.Body})
				}
				return nil
			})
		}
	})

	for range kills {
		time.Sleep(400 * time.Millisecond)
		p.kill()
		p.start()
	}
	time.Sleep(400 * time.Millisecond)
	close(stop)
	wg.Wait()

	total := 0
	for _, n := range acked {
		total += n
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		dmu.Lock()
		n := len(delivered)
		dmu.Unlock()
		if n >= total || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancelSub()
	subWG.Wait()
	p.kill()

	seen := map[string]uint64{}
	next := map[string]int{}
	for _, d := range delivered {
		if id, dup := seen[d.body]; dup {
			t.Errorf("%q delivered twice, as id %d and id %d", d.body, id, d.id)
			continue
		}
		seen[d.body] = d.id
		var from string
		var seq int
		fmt.Sscanf(d.body, "%s %d", &from, &seq)
		if seq != next[from]+1 {
			t.Errorf("%s's message %d delivered after its %d: out of order or lost", from, seq, next[from])
		}
		next[from] = seq
	}
	for id, n := range acked {
		if next[id] != n {
			t.Errorf("%s got ok for %d messages, %d delivered", id, n, next[id])
		}
	}
	// Every delivered message was audited as sent before it was delivered,
	// also those whose commit a kill cut short.
	sent := map[uint64]bool{}
	audit.Read(p.cfg.AuditPath, func(e audit.Event) error {
		var id uint64
		if e.Event == "send" && e.Target == "sink" {
			fmt.Sscanf(e.Detail, "id=%d", &id)
			sent[id] = true
		}
		return nil
	})
	for _, d := range delivered {
		if !sent[d.id] {
			t.Errorf("id %d (%q) delivered without a send line in the audit log", d.id, d.body)
		}
	}
	if n, err := audit.Verify(p.cfg.AuditPath); err != nil {
		t.Errorf("audit chain after %d kills: %v", kills, err)
	} else {
		t.Logf("%d acked, %d delivered, %d kills, audit chain of %d lines verified", total, len(delivered), kills, n)
	}
	if total < senders*kills {
		t.Errorf("only %d messages acked across the burst: the senders hardly ran", total)
	}
}
