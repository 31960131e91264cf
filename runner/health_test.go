package runner_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/runner-dev/runner/runner"
)

// healthHCL: crash exits 3 after three seconds (past apply's first-second
// check, which would refuse it) and may be restarted twice (the
// default policy, on-failure); quiet runs cat and gets a check-in after 2s
// without output; talk runs cat and may message the operator.
func healthHCL(run string, te *testEngine) string {
	return fmt.Sprintf(`
run %q {
  %s
}
agent "crash" {
  image        = %q
  command      = ["sh", "-c", "echo crash-run; sleep 3; exit 3"]
  max_restarts = 2
}
agent "quiet" {
  image   = %q
  command = ["cat"]
  checkin {
    after_idle = "2s"
    message    = "are you stuck?"
  }
}
agent "talk" {
  image   = %q
  command = ["cat"]
  send_to = ["operator"]
}
`, run, te.accept, testImage, testImage, testImage)
}

func agentOf(rep runner.StatusReport, name string) runner.AgentStatus {
	for _, a := range rep.Agents {
		if a.Agent == name {
			return a
		}
	}
	return runner.AgentStatus{}
}

func TestHealth(t *testing.T) {
	forEachEngine(t, func(t *testing.T, te *testEngine) {
		run := runName(t, te, "health")
		destroyAtEnd(t, te, run)
		cfg, path := writeConfig(t, healthHCL(run, te))
		r := newRunner(te)
		res, err := r.Apply(ctx(t), cfg)
		if err != nil {
			t.Fatalf("apply: %v", err)
		}

		t.Run("restart on failure", func(t *testing.T) {
			sawRestarting := false
			var last runner.AgentStatus
			for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				rep, err := r.Status(ctx(t), cfg)
				if err != nil {
					t.Fatal(err)
				}
				last = agentOf(rep, "crash")
				if last.Restarting {
					sawRestarting = true
					if !strings.HasPrefix(last.Process, "restarting (") {
						t.Errorf("restarting, but process is %q", last.Process)
					}
				}
				if last.Restarts == 2 && last.Process == "exited (3)" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("crash never ended after 2 restarts: %+v", last)
				}
			}
			if last.ExitStatus == nil || *last.ExitStatus != 3 || last.Restarting {
				t.Errorf("final status %+v", last)
			}
			if !sawRestarting {
				t.Log("never caught crash between an exit and its restart (each wait is at least 1s)")
			}
			out, err := r.Capture(ctx(t), cfg, "crash", 1000)
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(out, "Pane is dead (status 3,"); n != 3 {
				t.Errorf("capture shows %d exit statuses, want 3:\n%s", n, out)
			}
			if n := strings.Count(out, "crash-run"); n != 3 {
				t.Errorf("capture shows %d runs, want 3:\n%s", n, out)
			}
			for _, note := range []string{"restart 1 of 2", "restart 2 of 2"} {
				if !strings.Contains(out, "runner-agent: the command ended (exit status 3); "+note) {
					t.Errorf("capture lacks %q:\n%s", note, out)
				}
			}
		})

		t.Run("idle nudge", func(t *testing.T) {
			waitPane(t, r, cfg, "quiet", "[check-in] are you stuck?")
			var fire string
			for deadline := time.Now().Add(10 * time.Second); fire == "" && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				for _, l := range strings.Split(auditEvents(t, run), "\n") {
					if strings.Contains(l, `"event":"fire"`) && strings.Contains(l, `"target":"quiet"`) && strings.Contains(l, "after_idle 2s") {
						fire = l
					}
				}
			}
			if fire == "" || !strings.Contains(fire, `"actor":"runner"`) {
				t.Errorf("no after_idle fire for quiet in the audit log:\n%s", auditEvents(t, run))
			}
		})

		t.Run("status json", func(t *testing.T) {
			if _, err := r.Send(ctx(t), cfg, "talk", "hello talk"); err != nil {
				t.Fatal(err)
			}
			waitPane(t, r, cfg, "talk", "[from operator] hello talk")
			if out := agentExec(t, te, res.IDs["talk"], "runner-agent", "send", "operator", "hi operator"); out.ExitCode != 0 {
				t.Fatalf("runner-agent send: exit %d: %s%s", out.ExitCode, out.Stdout, out.Stderr)
			}
			var rep runner.StatusReport
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				out, err := runnerCmd(te, "status", path, "-o", "json").Output()
				if err != nil {
					t.Fatalf("runner status -o json: %v", err)
				}
				rep = runner.StatusReport{}
				if err := json.Unmarshal(out, &rep); err != nil {
					t.Fatalf("status json: %v\n%s", err, out)
				}
				if talk := agentOf(rep, "talk"); talk.LastIn != nil && talk.LastOut != nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("talk never showed last in and out:\n%s", out)
				}
			}
			talk := agentOf(rep, "talk")
			if rep.Relay != "running" || talk.Process != "running" || talk.IdleS == nil || *talk.IdleS < 0 || talk.Restarts != 0 || talk.Queued != 0 {
				t.Errorf("relay %q, talk %+v", rep.Relay, talk)
			}
			if time.Since(*talk.LastIn) > time.Minute || talk.LastOut.Before(*talk.LastIn) {
				t.Errorf("talk: last in %v, last out %v", talk.LastIn, talk.LastOut)
			}
			if crash := agentOf(rep, "crash"); crash.Restarts != 2 || crash.Process != "exited (3)" {
				t.Errorf("crash %+v", crash)
			}
			if quiet := agentOf(rep, "quiet"); quiet.LastIn == nil || quiet.CheckinsPending != 0 {
				t.Errorf("quiet %+v", quiet)
			}
			table, err := runnerCmd(te, "status", path).Output()
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"RESTARTS", "IDLE", "LAST IN", "LAST OUT", "CHECK-INS", "exited (3)"} {
				if !strings.Contains(string(table), want) {
					t.Errorf("status table lacks %q:\n%s", want, table)
				}
			}
		})
	})
}
