package proxy

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runner-dev/runner/internal/audit"
)

// Events go into the run's hash-chained audit log as they are.
func TestEventsAreAuditLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	log, err := audit.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	events := []Event{
		{Agent: "eng", Kind: "allow", Method: "CONNECT", Host: "pypi.org", Port: 443, Addr: netip.MustParseAddr("151.101.0.223"),
			Rule: "pypi.org", BytesUp: 812, BytesDown: 90210, Duration: 1500 * time.Millisecond, Reason: "closed", Count: 1},
		{Agent: "eng", Kind: "deny", Method: "GET", Host: "2001:db8::1", Port: 80, Entry: "[2001:db8::1]", Reason: `runner egress: GET http://[2001:db8::1]:80 refused for agent "eng": no rule allows it`, Count: 40},
		{Agent: "eng", Kind: "deny", Method: "CONNECT", Host: "a.example.com", Port: 8443, Addr: netip.MustParseAddr("fd00::1"), Entry: "[fd00::1]:8443", Reason: "runner egress: x: y", Count: 1},
		{Agent: "eng", Kind: "bad_request", Reason: "the connection closed in the middle of the request head", Count: 1},
	}
	for _, e := range events {
		if err := log.Append(e.Audit()); err != nil {
			t.Fatalf("%+v: %v", e, err)
		}
		back, ok := FromAudit(e.Audit())
		if !ok || back != e {
			t.Errorf("FromAudit(Audit(%+v)) = %+v, %v", e, back, ok)
		}
	}
	if _, ok := FromAudit(audit.Event{Event: "send", Actor: "eng", Detail: "x"}); ok {
		t.Error("FromAudit read a relay event")
	}
	if n, err := audit.Verify(path); err != nil || n != len(events) {
		t.Fatalf("verify: %d lines, %v", n, err)
	}
	b, _ := os.ReadFile(path)
	for _, want := range []string{`"event":"egress_allow"`, `"target":"pypi.org:443"`, "addr=151.101.0.223", "up=812 down=90210 duration=1.5s", `entry=\"[2001:db8::1]\"`,
		`"event":"egress_deny"`, `"target":"[2001:db8::1]:80"`, "count=40", `"event":"egress_bad_request"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("audit log lacks %s:\n%s", want, b)
		}
	}
}

func TestIdleTunnelsAreClosed(t *testing.T) {
	h, s, _ := world(t, Limits{IdleTimeout: 2500 * time.Millisecond})
	target := fmt.Sprintf("echo.example.com:%d", s.echoAddr.Port())
	idle := h.connectTunnel("eng", target)
	defer idle.Close()
	io.WriteString(idle, "x") // past the first-bytes check
	idle.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(idle, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	busy := h.connectTunnel("eng", target)
	defer busy.Close()
	io.WriteString(busy, "x")
	// busy trickles a byte every 300 ms for 4.5 s: never idle that long.
	for i := 0; i < 15; i++ {
		time.Sleep(300 * time.Millisecond)
		busy.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(busy, "y"); err != nil {
			t.Fatalf("a busy tunnel was closed after %d writes: %v", i, err)
		}
	}
	if err := isClosed(idle, 5*time.Second); err != nil {
		t.Fatalf("a tunnel idle past IdleTimeout: %v", err)
	}
	h.waitEvent("idle", func(e Event) bool { return e.Kind == "allow" && strings.Contains(e.Reason, "idle for 2.5s") })
}
