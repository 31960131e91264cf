package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runner-dev/runner/internal/audit"
	"github.com/runner-dev/runner/internal/config"
)

func TestAuditFilter(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	e := auditEntry{Seq: 1, Time: at.Format(time.RFC3339Nano), Event: "send", Actor: "operator", Target: "alice"}
	for _, tc := range []struct {
		f    auditFilter
		want bool
	}{
		{auditFilter{}, true},
		{auditFilter{agent: "alice"}, true},
		{auditFilter{agent: "operator"}, true},
		{auditFilter{agent: "bob"}, false},
		{auditFilter{events: []string{"deny", "send"}}, true},
		{auditFilter{events: []string{"deny"}}, false},
		{auditFilter{since: at.Add(-time.Second)}, true},
		{auditFilter{since: at.Add(time.Second)}, false},
		{auditFilter{agent: "alice", events: []string{"send"}, since: at}, true},
	} {
		if got := tc.f.match(e); got != tc.want {
			t.Errorf("%+v: match = %v", tc.f, got)
		}
	}
	if (auditFilter{since: at}).match(auditEntry{Time: "not a time"}) {
		t.Error("an entry without a readable time passes --since")
	}
}

func TestRunFlagValue(t *testing.T) {
	for args, want := range map[string]string{
		"--run demo --event send": "demo",
		"-run=demo":               "demo",
		"agents.hcl":              "",
		"x -- --run demo":         "",
		"--run":                   "",
	} {
		if got := runFlagValue(strings.Fields(args)); got != want {
			t.Errorf("runFlagValue(%q) = %q, want %q", args, got, want)
		}
	}
}

func TestSendGlob(t *testing.T) {
	cfg := &config.Config{Run: config.Run{Name: "demo"}, Agents: []config.Agent{{Name: "eng-1"}, {Name: "eng-2"}, {Name: "lead"}}}
	got, err := matchAgents(cfg, "eng-*")
	if err != nil || strings.Join(got, ",") != "eng-1,eng-2" {
		t.Errorf("eng-*: %v %v", got, err)
	}
	if _, err := matchAgents(cfg, "qa-*"); err == nil || !strings.Contains(err.Error(), "its agents are: eng-1, eng-2, lead") {
		t.Errorf("no match: %v", err)
	}
	if _, err := matchAgents(cfg, "eng-["); err == nil || !strings.Contains(err.Error(), "not a valid glob") {
		t.Errorf("bad glob: %v", err)
	}
	if !agentGlob("send", "eng-*") || agentGlob("send", "eng-1") || agentGlob("capture", "eng-*") {
		t.Error("agentGlob")
	}
}

// audit --verify and the printed log span every kept segment, and say what
// the cap dropped and which torn tails were repaired.
func TestAuditVerifyAndPrintSpanSegments(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.OpenWith(path, audit.Options{Max: 8 << 10, SegmentMax: 2 << 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := l.Append(audit.Event{Event: "send", Actor: "eng-1", Detail: fmt.Sprint("message ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"seq":`)
	f.Close()
	if l, err = audit.Open(path); err != nil {
		t.Fatal(err)
	}
	l.Close()
	rep, err := audit.VerifyReport(path)
	if err != nil {
		t.Fatal(err)
	}
	got := verifySummary(path, rep)
	for _, want := range []string{"hash chain intact across", "were dropped at the cap", fmt.Sprintf("the kept chain starts at seq %d", rep.FirstSeq), "repaired at seq", "cut a torn last line: 7 bytes"} {
		if !strings.Contains(got, want) {
			t.Errorf("verify summary lacks %q:\n%s", want, got)
		}
	}
	var out strings.Builder
	if err := printAudit(path, auditFilter{events: []string{"send"}}, false, &out); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); !strings.Contains(lines[len(lines)-1], "message 99") || len(lines) < 10 {
		t.Errorf("printed %d sends, the last %q; want those kept, ending with message 99", len(lines), lines[len(lines)-1])
	}
}
