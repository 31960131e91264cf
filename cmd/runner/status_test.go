package main

import (
	"strings"
	"testing"
	"time"

	"github.com/runner-dev/runner/runner"
)

func TestWriteStatus(t *testing.T) {
	now := time.Date(2025, 1, 2, 15, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	idle := func(s int64) *int64 { return &s }
	rep := runner.StatusReport{Run: "team", Engine: "docker at unix:///var/run/docker.sock", Rootless: true, Relay: "running",
		IDMapping: "rootless: container uid 0 = host uid 1500, 1-65536 = host 100000-165535 (runner-ci's /etc/subuid)",
		Agents: []runner.AgentStatus{
			{Agent: "pm", ID: "abc123", State: "running", Health: "healthy", Process: "running", IdleS: idle(42), LastIn: at(-5 * time.Second),
				LastOut: at(-3*time.Minute - 12*time.Second), Queued: 2, CheckinsPending: 3, NextCheckin: at(4 * time.Minute),
				Uptime: "1h0m0s", Security: "verified", Image: "localhost/runner-agent:latest", Limits: "mem=512MiB",
				IDs: &runner.AgentIDs{UID: 41234, GID: 41234, HostUID: 141233, HostGID: 141233, Source: "allocated"}},
			{Agent: "eng-1", ID: "def456", State: "running", Health: "unhealthy", Process: "restarting (2)", Restarts: 2, Restarting: true, IdleS: idle(7300), Security: "verified",
				IDs: &runner.AgentIDs{UID: 2000, GID: 2000, HostUID: 101999, HostGID: 101999, Source: "config"}},
			{Agent: "qa", State: "absent", Security: "-"},
		}}
	var b strings.Builder
	writeStatus(&b, rep, false, now)
	want := `Run "team" on docker at unix:///var/run/docker.sock, rootless
Uids: rootless: container uid 0 = host uid 1500, 1-65536 = host 100000-165535 (runner-ci's /etc/subuid)

AGENT  CONTAINER  UID                             STATE                PROCESS         RESTARTS  IDLE  LAST IN            LAST OUT   CHECK-INS      UPTIME  SECURITY
pm     abc123     41234 (host 141233)             running (healthy)    running         0         42s   5s ago (2 queued)  3m12s ago  3, next in 4m  1h0m0s  verified
eng-1  def456     2000 (host 101999) (from file)  running (unhealthy)  restarting (2)  2         2h1m  -                  -          -              -       verified
qa     -          -                               absent               -               -         -     -                  -          -              -       -
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	rep.OperatorInbox = 3
	writeStatus(&b, rep, false, now)
	if !strings.Contains(b.String(), "Inbox: 3 messages from agents for the operator: read them with `runner inbox FILE`\n") {
		t.Errorf("messages waiting for the operator are not shown:\n%s", b.String())
	}
	rep.OperatorInbox = 0
	b.Reset()
	rep.Relay = "not answering: connection refused"
	writeStatus(&b, rep, true, now)
	if !strings.Contains(b.String(), "Relay: not answering") || !strings.Contains(b.String(), "IMAGE") || !strings.Contains(b.String(), "localhost/runner-agent:latest  mem=512MiB") {
		t.Errorf("wide, relay down:\n%s", b.String())
	}
	for d, want := range map[time.Duration]string{0: "0s", 59 * time.Second: "59s", time.Minute: "1m", 61 * time.Second: "1m1s",
		2 * time.Hour: "2h", 47*time.Hour + 59*time.Minute: "47h59m", 50 * time.Hour: "2d2h", 72 * time.Hour: "3d"} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestWriteStatusEgressLine(t *testing.T) {
	rep := runner.StatusReport{Run: "team", Engine: "docker", Relay: "running", Agents: []runner.AgentStatus{
		{Agent: "eng", State: "running", Security: "verified", Egress: &runner.EgressStatus{Source: "egress", Rules: 3, Allowed: 12, Denied: 2, Line: "3 rules, 12 allowed, 2 denied"}},
		{Agent: "ops", State: "running", Security: "verified"},
	}}
	var b strings.Builder
	writeStatus(&b, rep, false, time.Now())
	if !strings.Contains(b.String(), "\n  eng: egress: 3 rules, 12 allowed, 2 denied\n") || strings.Contains(b.String(), "ops: egress") {
		t.Errorf("status:\n%s", b.String())
	}
}
