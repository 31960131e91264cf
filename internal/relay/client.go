package relay

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// requestTimeout bounds each request/reply exchange of a Client.
const requestTimeout = 30 * time.Second

// maxWelcome bounds the welcome frame, read before the relay has said what
// its limits are; it holds the peer list.
const maxWelcome = 1 << 20

// Error is the relay refusing a request. Code is one of the Code constants.
type Error struct {
	Code   string
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("relay refused the request: %s (%s)", e.Reason, e.Code)
}

// Message is a send request. ClientID identifies it for dedupe: sending the
// same ClientID again (after a reconnect, say) is answered with the first
// one's id and queues nothing.
type Message struct {
	To       string
	Body     string
	Kind     string // "" or "message"; "brief" for the operator's briefs
	ClientID string // see NewClientID; empty disables dedupe
}

// NewClientID returns a random id for Message.ClientID.
func NewClientID() string { return rand.Text() }

// Client is one authenticated connection to the relay. Requests may be made
// from several goroutines; each waits for its reply. Subscribe takes the
// connection over for deliveries, so use a second Client for requests.
type Client struct {
	conn       net.Conn
	r          *bufio.Reader
	id         string
	maxMessage int
	idleAfter  []int

	mu         sync.Mutex
	subscribed bool
}

// Dial connects to the relay at socketPath and authenticates with token (the
// contents of the credential file). ctx bounds the connection and hello.
func Dial(ctx context.Context, socketPath, token string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socketPath)
	if err != nil {
		return nil, fmt.Errorf("connect to the relay at %s: %w (is the run up, and the socket mounted?)", socketPath, err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	deadline := time.Now().Add(requestTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn.SetDeadline(deadline)
	c := &Client{conn: conn, r: bufio.NewReader(conn)}
	if err := c.writeFrame(request{V: version, Type: "hello", Token: token}); err != nil {
		stop()
		conn.Close()
		return nil, fmt.Errorf("relay hello: %w", err)
	}
	b, err := readFrame(c.r, maxWelcome)
	if err != nil {
		stop()
		conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("relay hello: %w (the relay closed the connection: check the token)", err)
	}
	var w welcomeFrame
	if err := decodeReply(b, "welcome", &w); err != nil {
		stop()
		conn.Close()
		return nil, err
	}
	if !stop() { // ctx ended just now and closed conn
		return nil, ctx.Err()
	}
	c.id, c.maxMessage, c.idleAfter = w.ID, w.MaxMessage, w.IdleAfter
	conn.SetDeadline(time.Time{})
	return c, nil
}

// ID is the identity the relay authenticated this client as.
func (c *Client) ID() string { return c.id }

// MaxMessage is the largest body the relay accepts, in bytes.
func (c *Client) MaxMessage() int { return c.maxMessage }

// IdleAfter lists, sorted, the after_idle times in whole seconds of this
// identity's declared check-ins, as the relay said on connecting: the idle
// times worth reporting with Idle. Empty when it has none.
func (c *Client) IdleAfter() []int { return c.idleAfter }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Send sends body to the identity to, with a fresh ClientID, and returns the
// relay's message id. To retry a send whose reply was lost, use SendMessage
// with the same ClientID.
func (c *Client) Send(to, body string) (uint64, error) {
	return c.SendMessage(Message{To: to, Body: body, ClientID: NewClientID()})
}

// SendMessage sends m and returns the relay's message id; once it returns
// without error the relay has stored m durably.
func (c *Client) SendMessage(m Message) (uint64, error) {
	ok, err := c.roundTrip(request{V: version, Type: "send", To: m.To, Body: m.Body, Kind: m.Kind, ClientID: m.ClientID})
	return ok.ID, err
}

// Peers lists who this identity may send to.
func (c *Client) Peers() ([]string, error) {
	ok, err := c.roundTrip(request{V: version, Type: "peers"})
	return ok.Peers, err
}

// Inbox returns up to n of the messages most recently delivered to this
// identity, oldest first (n = 0: the relay's default).
func (c *Client) Inbox(n int) ([]Delivery, error) {
	ok, err := c.roundTrip(request{V: version, Type: "inbox", N: n})
	return ok.Messages, err
}

// Pending returns up to n (0: 20, at most 50) of the oldest messages queued
// for the operator, without removing them: the operator has no pane to
// deliver into, so it reads its queue this way and then Takes what it
// handled. Only the operator may ask (CodeForbidden otherwise).
func (c *Client) Pending(n int) ([]Delivery, error) {
	ok, err := c.roundTrip(request{V: version, Type: "pending", N: n})
	return ok.Messages, err
}

// Take removes the operator's queued messages with ids up to and including
// id, as delivered, and says how many it removed. Take after handling what
// Pending returned: a crash in between shows them again, never loses them.
func (c *Client) Take(id uint64) (int, error) {
	ok, err := c.roundTrip(request{V: version, Type: "take", ID: id})
	return ok.Taken, err
}

// Schedule asks for a check-in with body to this identity after the given
// time (at least a second), and returns its id and when it is due.
func (c *Client) Schedule(after time.Duration, body string) (uint64, time.Time, error) {
	ok, err := c.roundTrip(request{V: version, Type: "schedule", After: after.String(), Body: body})
	if err != nil {
		return 0, time.Time{}, err
	}
	if ok.Due == nil {
		return 0, time.Time{}, errors.New("relay accepted the check-in but did not say when it is due")
	}
	return ok.ID, *ok.Due, nil
}

// ScheduleFor is the operator's Schedule for agent to (`runner schedule`);
// the relay refuses it from any other identity.
func (c *Client) ScheduleFor(to string, after time.Duration, body string) (uint64, time.Time, error) {
	ok, err := c.roundTrip(request{V: version, Type: "schedule", To: to, After: after.String(), Body: body})
	if err != nil {
		return 0, time.Time{}, err
	}
	if ok.Due == nil {
		return 0, time.Time{}, errors.New("relay accepted the check-in but did not say when it is due")
	}
	return ok.ID, *ok.Due, nil
}

// Idle reports that this identity's pane has printed nothing for secs
// seconds; the relay fires the matching after_idle check-ins (see
// PROTOCOL.md) and says how many it fired.
func (c *Client) Idle(secs int) (fired int, err error) {
	ok, err := c.roundTrip(request{V: version, Type: "idle", For: secs})
	return ok.Fired, err
}

// Stats returns, for every identity of the run, its queue, last traffic and
// check-ins. Only the operator may ask (CodeForbidden otherwise).
func (c *Client) Stats() ([]AgentStats, error) {
	ok, err := c.roundTrip(request{V: version, Type: "stats"})
	return ok.Stats, err
}

// Subscribe receives this identity's deliveries, in order, one at a time, and
// calls handler for each; when handler returns nil the delivery is
// acknowledged and the next one comes. A handler error ends Subscribe with
// that error, unacknowledged: the relay delivers the message again to the
// next subscription. A delivery may repeat (after a crash, or a lost ack);
// ids increase, so a recipient drops any id it already handled. Subscribe
// returns when ctx is done or the connection fails, and closes the client.
func (c *Client) Subscribe(ctx context.Context, handler func(Delivery) error) error {
	c.mu.Lock()
	if c.subscribed {
		c.mu.Unlock()
		return errors.New("this relay client is already subscribed")
	}
	c.subscribed = true // from here on, the connection carries only deliveries and acks
	_, err := c.exchange(request{V: version, Type: "subscribe"})
	c.mu.Unlock()
	defer c.conn.Close()
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { c.conn.Close() })
	defer stop()
	for {
		c.conn.SetReadDeadline(time.Time{}) // deliveries come whenever they come
		b, err := readFrame(c.r, maxFrameFor(c.maxMessage))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("relay subscription ended: %w", err)
		}
		var f deliverFrame
		if err := decodeReply(b, "deliver", &f); err != nil {
			return err
		}
		if err := handler(f.Delivery); err != nil {
			return fmt.Errorf("delivery %d not acknowledged, the relay will send it again: %w", f.ID, err)
		}
		c.conn.SetWriteDeadline(time.Now().Add(requestTimeout))
		if err := c.writeFrame(request{V: version, Type: "ack", ID: f.ID}); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("acknowledge delivery %d: %w", f.ID, err)
		}
	}
}

func (c *Client) roundTrip(req request) (okFrame, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.subscribed {
		return okFrame{}, errors.New("this relay client is subscribed: Dial another one for requests")
	}
	return c.exchange(req)
}

// exchange sends req and reads its reply. Call with c.mu held.
func (c *Client) exchange(req request) (okFrame, error) {
	var ok okFrame
	c.conn.SetDeadline(time.Now().Add(requestTimeout))
	defer c.conn.SetDeadline(time.Time{})
	if err := c.writeFrame(req); err != nil {
		return ok, fmt.Errorf("relay %s: %w", req.Type, err)
	}
	b, err := readFrame(c.r, maxFrameFor(c.maxMessage)*inboxSize)
	if err != nil {
		return ok, fmt.Errorf("relay %s: no reply: %w", req.Type, err)
	}
	err = decodeReply(b, "ok", &ok)
	return ok, err
}

func (c *Client) writeFrame(req request) error {
	b, err := encodeFrame(req)
	if err != nil {
		return err
	}
	_, err = c.conn.Write(b)
	return err
}

// decodeReply decodes a relay frame of type want into dst, or returns the
// relay's error. Replies are decoded leniently: a newer relay may add fields.
func decodeReply(b []byte, want string, dst any) error {
	var head struct {
		Type   string `json:"type"`
		Code   string `json:"code"`
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return fmt.Errorf("relay sent a malformed frame: %v", err)
	}
	switch head.Type {
	case want:
		if err := json.Unmarshal(b, dst); err != nil {
			return fmt.Errorf("relay sent a malformed %s frame: %v", want, err)
		}
		return nil
	case "error":
		return &Error{Code: head.Code, Reason: head.Reason}
	}
	return fmt.Errorf("relay sent %q where %q was expected", head.Type, want)
}
