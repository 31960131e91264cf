package relay

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/runner-dev/runner/internal/audit"
)

type subscription struct {
	conn net.Conn
	wake chan struct{} // cap 1: "the queue may have grown"
}

// subscribe turns c into id's delivery stream: the relay sends the head of
// id's queue, waits for its ack, and moves on. One message is in flight at a
// time, which keeps order and matches pasting into one pane. A newer
// subscription for the same identity replaces this one.
func (s *Server) subscribe(ctx context.Context, c net.Conn, r *bufio.Reader, id string) {
	sub := &subscription{conn: c, wake: make(chan struct{}, 1)}
	s.mu.Lock()
	old := s.subs[id]
	s.subs[id] = sub
	s.mu.Unlock()
	detail := ""
	if old != nil {
		old.conn.Close()
		detail = "replaced the previous subscription"
	}
	s.audit("subscribe", id, "", detail)
	defer func() {
		s.mu.Lock()
		if s.subs[id] == sub {
			delete(s.subs, id)
		}
		s.mu.Unlock()
	}()
	if s.write(c, okFrame{V: version, Type: "ok"}) != nil {
		return
	}

	acks := make(chan uint64)
	readErr := make(chan error, 1)
	done := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		close(done)
		c.Close()
		wg.Wait()
	}()
	wg.Go(func() {
		for {
			b, err := s.readFrame(c, r, 0) // a subscriber may be quiet for hours
			var req request
			if err == nil {
				req, err = decodeRequest(b)
			}
			if err == nil && req.Type != "ack" {
				err = fmt.Errorf("a subscription only takes ack, got %s", req.Type)
			}
			if err != nil {
				readErr <- err
				return
			}
			select {
			case acks <- req.ID:
			case <-done:
				return
			}
		}
	})

	for {
		s.mu.Lock()
		var head *message
		if q := s.queues[id]; len(q) > 0 {
			head = q[0]
		}
		s.mu.Unlock()
		if head == nil {
			select {
			case <-sub.wake:
				continue
			case err := <-readErr:
				s.readFailed(c, id, err)
				return
			case <-ctx.Done():
				return
			}
		}
		if s.write(c, deliverFrame{V: version, Type: "deliver", Delivery: head.delivery()}) != nil {
			return
		}
		timer := time.NewTimer(s.cfg.AckTimeout)
		select {
		case ack := <-acks:
			timer.Stop()
			if ack != head.ID {
				s.readFailed(c, id, fmt.Errorf("ack for id %d while id %d is outstanding", ack, head.ID))
				return
			}
			s.acked(id, head)
		case <-timer.C:
			s.auditNoisy("ack_timeout", id, "", fmt.Sprintf("id=%d not acknowledged within %s: closing the subscription, it will be redelivered", head.ID, s.cfg.AckTimeout))
			return
		case err := <-readErr:
			timer.Stop()
			s.readFailed(c, id, err)
			return
		case <-ctx.Done():
			timer.Stop()
			return
		}
	}
}

// acked records that id acknowledged m. It does not wait for the commit:
// the next delivery is a decision of its own, recorded when that message was
// accepted, and a crash before this one is on disk only delivers m again
// (which the recipient drops). So a subscriber's pace is its own round trip,
// not the disk's.
func (s *Server) acked(id string, m *message) {
	s.mu.Lock()
	q := s.queues[id]
	if len(q) == 0 || q[0] != m {
		s.mu.Unlock()
		return // acked already, through a subscription this one replaced
	}
	detail := fmt.Sprintf("id=%d kind=%s acked", m.ID, m.Kind)
	now := s.now()
	m.Delivered = now
	s.lastIn[id] = now
	s.dequeue(id, 0)
	s.remember(m)
	// No sync: if this record is lost in a crash, the message is delivered
	// again and the recipient drops the repeated id.
	o := &op{
		recs:   []record{{Op: "ack", ID: m.ID, Time: now}},
		events: []audit.Event{s.event("deliver", m.From, id, detail)},
		refused: func(error) []audit.Event {
			return []audit.Event{s.event("deliver", m.From, id, detail+"; the ack could not be journaled, so it will be redelivered after a restart")}
		},
	}
	s.submit(o)
	s.mu.Unlock()
}
