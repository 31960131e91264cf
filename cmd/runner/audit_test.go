package main

import (
	"strings"
	"testing"
	"time"

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
