package relay

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

func frame(payload string) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(payload))), payload...)
}

func TestDecodeRequest(t *testing.T) {
	ok := map[string]request{
		`{"v":1,"type":"hello","token":"abc"}`:                                        {V: 1, Type: "hello", Token: "abc"},
		` {"type":"send","v":1,"to":"eng-2","body":"hi\u001b","client_id":"c1"} `:     {V: 1, Type: "send", To: "eng-2", Body: "hi\x1b", ClientID: "c1"},
		`{"v":1,"type":"inbox","n":5}`:                                                {V: 1, Type: "inbox", N: 5},
		`{"v":1,"type":"schedule","after":"1.5m","body":"x"}`:                         {V: 1, Type: "schedule", After: "1.5m", Body: "x"},
		`{"v":1,"type":"ack","id":18446744073709551615}`:                              {V: 1, Type: "ack", ID: 1<<64 - 1},
		`{"v":1,"type":"subscribe"}`:                                                  {V: 1, Type: "subscribe"},
		`{"v":1,"type":"idle","for":600}`:                                             {V: 1, Type: "idle", For: 600},
		`{"v":1,"type":"stats"}`:                                                      {V: 1, Type: "stats"},
		`{"v":1,"type":"send","to":"eng-2","body":"\ud800 lone surrogate","kind":""}`: {V: 1, Type: "send", To: "eng-2", Body: "\uFFFD lone surrogate"},
	}
	for in, want := range ok {
		got, err := decodeRequest([]byte(in))
		if err != nil || got != want {
			t.Errorf("decode %s = %+v, %v; want %+v", in, got, err, want)
		}
	}
	bad := map[string]string{
		`{"v":1,"type":"hello","token":"a","id":"operator"}`:                           `field "id" is not allowed`,
		`{"v":1,"type":"send","to":"x","body":"b","from":"o"}`:                         `field "from" is not allowed`,
		`{"v":1,"Type":"hello","token":"a"}`:                                           `missing "type"`,
		`{"v":1,"type":"hello","Token":"a"}`:                                           `field "Token" is not allowed`,
		`{"v":1,"type":"hello","token":"a","token":"b"}`:                               "appears twice",
		`{"v":1,"type":"hello","token":"a"} {}`:                                        "exactly one JSON value",
		`{"v":1,"type":"hello","token":"a"}x`:                                          "exactly one JSON value",
		`{"v":1.0,"type":"hello","token":"a"}`:                                         `"v" must be`,
		`{"v":"1","type":"hello","token":"a"}`:                                         `"v" must be`,
		`{"v":2,"type":"hello","token":"a"}`:                                           "version 1",
		`{"type":"hello","token":"a"}`:                                                 `missing "v"`,
		`{"v":1,"type":"hello","token":null}`:                                          `"token" must be a string`,
		`{"v":1,"type":"hello","token":""}`:                                            `non-empty "token"`,
		`{"v":1,"type":"hello","token":{"a":1}}`:                                       `"token" must be a string`,
		`{"v":1,"type":"inbox","n":-1}`:                                                `"n" must be`,
		`{"v":1,"type":"inbox","n":1e2}`:                                               `"n" must be`,
		`{"v":1,"type":"ack","id":18446744073709551616}`:                               `"id" must be`,
		`{"v":1,"type":"ack"}`:                                                         `non-empty "id"`,
		`{"v":1,"type":"exec","cmd":"sh"}`:                                             "unknown type",
		`{"v":1,"type":"idle"}`:                                                        `non-empty "for"`,
		`{"v":1,"type":"idle","for":0}`:                                                `non-empty "for"`,
		`{"v":1,"type":"idle","for":-5}`:                                               `"for" must be`,
		`{"v":1,"type":"idle","for":1.5}`:                                              `"for" must be`,
		`{"v":1,"type":"idle","for":"600"}`:                                            `"for" must be`,
		`{"v":1,"type":"idle","for":600,"to":"eng-2"}`:                                 `field "to" is not allowed`,
		`{"v":1,"type":"stats","id":"eng-1"}`:                                          `field "id" is not allowed`,
		`{"v":1,"type":"send","to":"x","body":"b","for":3}`:                            `field "for" is not allowed`,
		`[{"v":1,"type":"peers"}]`:                                                     "one JSON object",
		`{"v":1,"type":"peers"`:                                                        "not valid JSON",
		"{\"v\":1,\"type\":\"send\",\"to\":\"a\",\"body\":\"\xff\"}":                   "UTF-8",
		`{"v":1,"type":"peers","a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9}`: "more keys",
	}
	for in, want := range bad {
		if got, err := decodeRequest([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("decode %s = %+v, %v; want an error containing %q", in, got, err, want)
		}
	}
}

func TestReadFrame(t *testing.T) {
	r := bufio.NewReader(bytes.NewReader(append(frame("abc"), frame("de")...)))
	for _, want := range []string{"abc", "de"} {
		if b, err := readFrame(r, 10); err != nil || string(b) != want {
			t.Fatalf("readFrame = %q, %v; want %q", b, err, want)
		}
	}
	if _, err := readFrame(bufio.NewReader(bytes.NewReader(frame(strings.Repeat("x", 11)))), 10); err == nil {
		t.Error("accepted a frame over the limit")
	}
	if _, err := readFrame(bufio.NewReader(bytes.NewReader([]byte{0, 0, 0, 0})), 10); err != errEmptyFrame {
		t.Errorf("empty frame: %v", err)
	}
	if _, err := readFrame(bufio.NewReader(bytes.NewReader([]byte{0, 0, 0, 5, 'a'})), 10); err == nil {
		t.Error("accepted a truncated frame")
	}
}

// FuzzDecodeFrame feeds arbitrary bytes to the relay's input path: frames are
// bounded, decoding never panics, and whatever is accepted is a well-formed
// request that survives a round trip through the client's encoder.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"type":"hello","token":"00ff"}`,
		`{"v":1,"type":"send","to":"eng-2","body":"hello\nworld","client_id":"x1","kind":"brief"}`,
		`{"v":1,"type":"peers"}`,
		`{"v":1,"type":"inbox","n":3}`,
		`{"v":1,"type":"schedule","after":"1.5m","body":"check in"}`,
		`{"v":1,"type":"subscribe"}`,
		`{"v":1,"type":"ack","id":7}`,
		`{"v":1,"type":"idle","for":600}`,
		`{"v":1,"type":"idle","for":0}`,
		`{"v":1,"type":"idle","for":99999999999999999999}`,
		`{"v":1,"type":"stats"}`,
		`{"v":1,"type":"stats","for":1}`,
		`{"v":1,"type":"hello","token":"a","token":"b"}`,
		`{"v":1,"Type":"hello","token":"a"}`,
		`{"v":1,"type":"send","to":"e","body":"\u0000\ud800"}`,
		`{"v":1,"type":"hello","token":"a"}{"v":1}`,
		`{"v":1,"type":{"nested":[1,2,{"deep":null}]}}`,
		"\xff\xfe\xfd",
	} {
		f.Add(frame(s))
	}
	f.Add(append(frame(`{"v":1,"type":"peers"}`), frame(`{"v":1,"type":"subscribe"}`)...))
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, '{'})
	f.Add([]byte{0, 0, 0, 100, '{', '"'})
	f.Fuzz(func(t *testing.T, data []byte) {
		const max = 4096
		r := bufio.NewReader(bytes.NewReader(data))
		for {
			b, err := readFrame(r, max)
			if err != nil {
				return
			}
			if len(b) == 0 || len(b) > max {
				t.Fatalf("readFrame returned %d bytes, limit %d", len(b), max)
			}
			req, err := decodeRequest(b)
			if err != nil {
				continue
			}
			if _, known := fieldsByType[req.Type]; !known || req.V != version {
				t.Fatalf("accepted %+v", req)
			}
			again, err := encodeFrame(req)
			if err != nil {
				t.Fatal(err)
			}
			if req2, err := decodeRequest(again[4:]); err != nil || req2 != req {
				t.Fatalf("round trip of %+v gave %+v, %v", req, req2, err)
			}
		}
	})
}
