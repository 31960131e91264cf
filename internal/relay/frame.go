package relay

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// version is the protocol version every frame carries as "v".
const version = 1

// request is every frame a client sends. decodeRequest fills it strictly; the
// client encodes it with the same tags.
type request struct {
	V        int    `json:"v"`
	Type     string `json:"type"`
	Token    string `json:"token,omitempty"`
	To       string `json:"to,omitempty"`
	Body     string `json:"body,omitempty"`
	Kind     string `json:"kind,omitempty"`
	ClientID string `json:"client_id,omitempty"`
	After    string `json:"after,omitempty"`
	N        int    `json:"n,omitempty"`
	ID       uint64 `json:"id,omitempty"`
	For      int    `json:"for,omitempty"`
}

// fieldsByType lists, per request type, the keys it may carry besides v and
// type; the ones marked required must be present and non-empty.
var fieldsByType = map[string]struct{ allowed, required []string }{
	"hello":     {[]string{"token"}, []string{"token"}},
	"send":      {[]string{"to", "body", "client_id", "kind"}, []string{"to", "body"}},
	"peers":     {},
	"inbox":     {[]string{"n"}, nil},
	"schedule":  {[]string{"after", "body", "to"}, []string{"after", "body"}}, // to: the operator's only
	"subscribe": {},
	"ack":       {[]string{"id"}, []string{"id"}},
	"idle":      {[]string{"for"}, []string{"for"}},
	"stats":     {},
	"pending":   {[]string{"n"}, nil},
	"take":      {[]string{"id"}, []string{"id"}},
}

// Delivery is a message handed to a subscriber, and one entry of an inbox.
type Delivery struct {
	ID   uint64    `json:"id"`   // stable across redeliveries; increases per recipient
	From string    `json:"from"` // the authenticated sender, or "runner" for check-ins
	Kind string    `json:"kind"` // "message", "checkin" or "brief"
	Body string    `json:"body"`
	Time time.Time `json:"time"` // when the relay accepted it
}

// AgentStats is one identity's entry in a stats reply: what the relay knows
// about its traffic and check-ins. Times are absent when nothing happened
// yet (since the journal's records began).
type AgentStats struct {
	ID     string `json:"id"`
	Queued int    `json:"queued"` // messages accepted for it and not yet delivered
	// LastIn is when a message (of any kind) was last delivered to it,
	// that is acknowledged by its subscriber.
	LastIn *time.Time `json:"last_in,omitempty"`
	// LastOut is when the relay last accepted a message it sent.
	LastOut *time.Time `json:"last_out,omitempty"`
	// Checkins counts its declared recurring check-ins (every), IdleCheckins
	// its declared after_idle ones, Schedules its pending self-scheduled ones.
	Checkins     int `json:"checkins"`
	IdleCheckins int `json:"idle_checkins"`
	Schedules    int `json:"schedules"`
	// NextCheckin is when the next recurring or self-scheduled check-in
	// fires.
	NextCheckin *time.Time `json:"next_checkin,omitempty"`
	// Subscribed: a subscription (its container's message delivery) is open.
	Subscribed bool `json:"subscribed"`
}

// Frames the relay sends.
type (
	welcomeFrame struct {
		V          int      `json:"v"`
		Type       string   `json:"type"` // "welcome"
		ID         string   `json:"id"`
		Peers      []string `json:"peers"`
		MaxMessage int      `json:"max_message"`
		// IdleAfter lists, in whole seconds, the distinct after_idle times
		// of this identity's declared check-ins (see the idle request).
		IdleAfter []int `json:"idle_after,omitempty"`
	}
	okFrame struct {
		V         int        `json:"v"`
		Type      string     `json:"type"`                // "ok"
		ID        uint64     `json:"id,omitempty"`        // send: the message id; schedule: the check-in id
		Duplicate bool       `json:"duplicate,omitempty"` // send: client_id was seen before, nothing new queued
		Peers     []string   `json:"peers,omitempty"`
		Messages  []Delivery `json:"messages,omitempty"`
		Due       *time.Time `json:"due,omitempty"`
		Fired     int        `json:"fired,omitempty"` // idle: how many check-ins it fired
		Taken     int        `json:"taken,omitempty"` // take: how many messages it removed
		// Stats answers stats: one entry per identity of the run, sorted.
		Stats []AgentStats `json:"stats,omitempty"`
	}
	errorFrame struct {
		V      int    `json:"v"`
		Type   string `json:"type"` // "error"
		Code   string `json:"code"`
		Reason string `json:"reason"`
	}
	deliverFrame struct {
		V    int    `json:"v"`
		Type string `json:"type"` // "deliver"
		Delivery
	}
)

// maxFrameFor is the largest frame accepted when bodies may hold maxMessage
// bytes: JSON may escape a byte as six (\u001f), plus room for the other
// fields.
func maxFrameFor(maxMessage int) int { return 6*maxMessage + 4096 }

// errFrameTooLarge and errEmptyFrame end the connection: after them the
// stream cannot be trusted to be in sync.
var (
	errFrameTooLarge = errors.New("frame larger than the relay accepts")
	errEmptyFrame    = errors.New("frame of length 0")
)

// readFrame reads one length-prefixed frame of at most max bytes.
func readFrame(r *bufio.Reader, max int) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 {
		return nil, errEmptyFrame
	}
	if uint64(n) > uint64(max) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", errFrameTooLarge, n, max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

// encodeFrame returns v as a frame: length prefix and JSON, in one buffer so
// that it goes out in one write.
func encodeFrame(v any) ([]byte, error) {
	var buf bytes.Buffer
	buf.Write([]byte{0, 0, 0, 0})
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // bodies are shown in terminals, not HTML
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	b = b[:len(b)-1] // Encode's newline
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b, nil
}

// decodeRequest parses one client frame strictly: a single JSON object, valid
// UTF-8, keys spelled exactly (encoding/json alone would match keys
// case-insensitively and take the last of duplicates), no unknown or
// duplicate keys, "v":1, a known type, and that type's required fields.
func decodeRequest(b []byte) (request, error) {
	var req request
	if !utf8.Valid(b) {
		return req, errors.New("frame is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return req, errors.New("frame must be one JSON object")
	}
	fields := make(map[string]json.RawMessage)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return req, fmt.Errorf("frame is not valid JSON: %v", err)
		}
		key, _ := tok.(string)
		if _, dup := fields[key]; dup {
			return req, fmt.Errorf("key %q appears twice", key)
		}
		if len(fields) == 10 {
			return req, errors.New("frame has more keys than any request type")
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return req, fmt.Errorf("frame is not valid JSON: %v", err)
		}
		fields[key] = raw
	}
	if _, err := dec.Token(); err != nil {
		return req, fmt.Errorf("frame is not valid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return req, errors.New("frame must hold exactly one JSON value")
	}

	if err := number(fields["v"], "v", &req.V); err != nil {
		return req, err
	}
	if req.V != version {
		return req, fmt.Errorf(`"v" is %d; this relay speaks version %d`, req.V, version)
	}
	if err := str(fields["type"], "type", &req.Type); err != nil {
		return req, err
	}
	spec, ok := fieldsByType[req.Type]
	if !ok {
		return req, fmt.Errorf("unknown type %q (want one of %s)", req.Type, strings.Join(typeNames(), ", "))
	}
	for key, raw := range fields {
		var err error
		switch {
		case key == "v" || key == "type":
		case !slices.Contains(spec.allowed, key):
			err = fmt.Errorf("field %q is not allowed in a %s request (allowed: v, type%s)", key, req.Type, prefixEach(", ", spec.allowed))
		case key == "token":
			err = str(raw, key, &req.Token)
		case key == "to":
			err = str(raw, key, &req.To)
		case key == "body":
			err = str(raw, key, &req.Body)
		case key == "kind":
			err = str(raw, key, &req.Kind)
		case key == "client_id":
			err = str(raw, key, &req.ClientID)
		case key == "after":
			err = str(raw, key, &req.After)
		case key == "n":
			err = number(raw, key, &req.N)
		case key == "id":
			err = number(raw, key, &req.ID)
		case key == "for":
			err = number(raw, key, &req.For)
		}
		if err != nil {
			return req, err
		}
	}
	for _, key := range spec.required {
		if !present(req, key) {
			return req, fmt.Errorf("a %s request needs a non-empty %q", req.Type, key)
		}
	}
	return req, nil
}

func present(req request, key string) bool {
	switch key {
	case "token":
		return req.Token != ""
	case "to":
		return req.To != ""
	case "body":
		return req.Body != ""
	case "after":
		return req.After != ""
	case "id":
		return req.ID != 0
	case "for":
		return req.For != 0
	}
	return false
}

func str(raw json.RawMessage, key string, dst *string) error {
	if raw == nil {
		return fmt.Errorf("missing %q", key)
	}
	if raw[0] != '"' {
		return fmt.Errorf("%q must be a string", key)
	}
	return json.Unmarshal(raw, dst)
}

func number[T int | uint64](raw json.RawMessage, key string, dst *T) error {
	if raw == nil {
		return fmt.Errorf("missing %q", key)
	}
	// The first-byte check rules out negatives, null, strings and objects;
	// Unmarshal rules out fractions, exponents and overflow.
	if raw[0] < '0' || raw[0] > '9' || json.Unmarshal(raw, dst) != nil {
		return fmt.Errorf("%q must be a non-negative integer", key)
	}
	return nil
}

func typeNames() []string {
	names := make([]string, 0, len(fieldsByType))
	for n := range fieldsByType {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func prefixEach(sep string, ss []string) string {
	var b strings.Builder
	for _, s := range ss {
		b.WriteString(sep)
		b.WriteString(s)
	}
	return b.String()
}
