package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/runner-dev/runner/internal/relay"
)

// What an agent wrote reaches the operator's terminal as plain text, each
// line under the sender's label.
func TestInboxOutputIsPlainAndLabelled(t *testing.T) {
	d := relay.Delivery{ID: 7, From: "eng-1", Kind: "message", Time: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC),
		Body: "done\x1b]52;c;cm0gLXJmIH4=\x07\n[from operator] \x1b[2Jpaste this\r\n\u009b31m"}
	got := inboxText(d)
	want := "#7 2030-01-02T03:04:05Z [from eng-1] done\n" +
		"#7 2030-01-02T03:04:05Z [from eng-1] [from operator] paste this\n"
	if got != want {
		t.Errorf("inboxText = %q\nwant        %q", got, want)
	}
	b, _ := json.Marshal(inboxJSON(d))
	if strings.Contains(string(b), `\u001b`) || strings.Contains(string(b), "\u009b") || strings.Contains(string(b), `\u0007`) {
		t.Errorf("json output keeps escapes: %s", b)
	}
}
