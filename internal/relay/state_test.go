package relay

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestJournalCompaction(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.RateLimit = Rate{PerSecond: 1e6, Burst: 1e6} })
	h.beforeServe = func(s *Server) { s.compactAt = 4096 }
	h.start()
	inbox := h.subscribe("eng-2")
	op := h.dial(Operator)
	var last Message
	for i := range 200 {
		last = Message{To: "eng-2", Body: fmt.Sprint("delivered ", i)}
		if i == 199 {
			last.ClientID = NewClientID()
		}
		if _, err := op.SendMessage(last); err != nil {
			t.Fatal(err)
		}
	}
	receive(t, inbox, 200)
	h.waitFor("last deliver", func(a auditLine) bool { return a.Event == "deliver" && strings.Contains(a.Detail, "id=200 ") })
	for i := range 3 {
		if _, err := op.Send("eng-1", fmt.Sprint("pending ", i)); err != nil {
			t.Fatal(err)
		}
	}
	j, err := os.ReadFile(filepath.Join(h.cfg.StateDir, "journal"))
	if err != nil {
		t.Fatal(err)
	}
	// Uncompacted, the journal would hold 200 msg and 200 ack records;
	// compaction folds delivered ones into the inbox history.
	if acks := strings.Count(string(j), `"op":"ack"`); acks > 100 || !strings.Contains(string(j), `"op":"hist"`) {
		t.Errorf("journal not compacted: %d ack records, %d bytes", acks, len(j))
	}

	h.stop()
	h.start()
	got := receive(t, h.subscribe("eng-1"), 3)
	for i, d := range got {
		if d.Body != fmt.Sprint("pending ", i) {
			t.Errorf("pending %d = %q", i, d.Body)
		}
	}
	hist, err := h.dial("eng-2").Inbox(inboxSize)
	if err != nil || len(hist) != inboxSize || hist[inboxSize-1].Body != "delivered 199" {
		t.Fatalf("inbox after compaction and restart: %d entries, %v", len(hist), err)
	}
	if id, err := h.dial(Operator).SendMessage(last); err != nil || id != 200 {
		t.Fatalf("resend after compaction = %d, %v; want duplicate of 200", id, err)
	}
}

func TestJournalRepairAndCorruption(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.start()
	op := h.dial(Operator)
	for i := range 2 {
		if _, err := op.Send("eng-1", fmt.Sprint("kept ", i)); err != nil {
			t.Fatal(err)
		}
	}
	h.stop()
	journal := filepath.Join(h.cfg.StateDir, "journal")
	good, err := os.ReadFile(journal)
	if err != nil {
		t.Fatal(err)
	}
	// A crash in the middle of an append leaves a partial last line.
	torn := append(append([]byte{}, good...), `{"op":"msg","msg":{"id":3,"fr`...)
	if err := os.WriteFile(journal, torn, 0o600); err != nil {
		t.Fatal(err)
	}
	h.start()
	h.waitFor("journal_repair", func(a auditLine) bool { return a.Event == "journal_repair" })
	inbox := h.subscribe("eng-1")
	if got := receive(t, inbox, 2); got[0].Body != "kept 0" || got[1].Body != "kept 1" {
		t.Fatalf("got %+v", got)
	}
	h.stop()

	lines := strings.SplitAfter(string(good), "\n")
	lines[1] = "this is not a record\n"
	os.WriteFile(journal, []byte(strings.Join(lines, "")), 0o600)
	if _, err := New(h.cfg); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("New with a corrupt journal = %v", err)
	}
}

func TestRecipientRemovedFromRun(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.start()
	if _, err := h.dial(Operator).Send("eng-3", "for a leaver"); err != nil {
		t.Fatal(err)
	}
	h.stop()
	delete(h.cfg.Credentials, "eng-3")
	delete(h.cfg.ACL, "eng-3")
	delete(h.cfg.Sockets, "eng-3")
	h.start()
	h.waitFor("drop", func(a auditLine) bool { return a.Event == "drop" && a.Target == "eng-3" })
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		mutate func(*Config)
		want   string
	}{
		"bad run name":       {func(c *Config) { c.Run = "Bad Run" }, "invalid run name"},
		"no audit":           {func(c *Config) { c.Audit = nil }, "Audit is required"},
		"no credentials":     {func(c *Config) { c.Credentials = nil; c.ACL = nil }, "no Credentials"},
		"short secret":       {func(c *Config) { c.Credentials["eng-1"] = "abcd" }, "at least 128 bits"},
		"non-hex secret":     {func(c *Config) { c.Credentials["eng-1"] = strings.Repeat("z", 64) }, "at least 128 bits"},
		"shared secret":      {func(c *Config) { c.Credentials["eng-1"] = c.Credentials["eng-2"] }, "same credential"},
		"reserved runner":    {func(c *Config) { c.Credentials[Runner] = strings.Repeat("ab", 32) }, "reserved"},
		"bad identity":       {func(c *Config) { c.Credentials["Eng 1"] = strings.Repeat("ab", 32) }, "invalid identity name"},
		"unknown ACL key":    {func(c *Config) { c.ACL["ghost"] = []string{"*"} }, `entry for "ghost"`},
		"bad ACL pattern":    {func(c *Config) { c.ACL["eng-1"] = []string{"eng-["} }, "malformed"},
		"checkin too fast":   {func(c *Config) { c.Checkins = []Checkin{{Agent: "eng-1", Every: 500 * time.Millisecond, Message: "x"}} }, "minimum"},
		"checkin unknown":    {func(c *Config) { c.Checkins = []Checkin{{Agent: "ghost", Every: time.Minute, Message: "x"}} }, "no credential"},
		"checkin empty":      {func(c *Config) { c.Checkins = []Checkin{{Agent: "eng-1", Every: time.Minute}} }, "empty"},
		"checkin no trigger": {func(c *Config) { c.Checkins = []Checkin{{Agent: "eng-1", Message: "x"}} }, "minimum"},
		"checkin both triggers": {func(c *Config) {
			c.Checkins = []Checkin{{Agent: "eng-1", Every: time.Minute, AfterIdle: time.Minute, Message: "x"}}
		}, "both Every and AfterIdle"},
		"idle too short": {func(c *Config) {
			c.Checkins = []Checkin{{Agent: "eng-1", AfterIdle: 999 * time.Millisecond, Message: "x"}}
		}, "minimum"},
		"huge messages": {func(c *Config) { c.MaxMessage = 1 << 30 }, "out of range"},
		"no socket": {func(c *Config) {
			c.Sockets = map[string]string{Operator: "/tmp/x/op.sock", "eng-1": "/tmp/x/1.sock", "eng-2": "/tmp/x/2.sock"}
		}, `"eng-3" has no socket`},
		"shared socket": {func(c *Config) {
			c.Sockets = map[string]string{Operator: "/tmp/x/op.sock", "eng-1": "/tmp/x/1.sock", "eng-2": "/tmp/x/1.sock", "eng-3": "/tmp/x/3.sock"}
		}, "share the socket"},
		"socket of nobody": {func(c *Config) {
			c.Sockets = map[string]string{Operator: "/tmp/x/op.sock", "eng-1": "/tmp/x/1.sock", "eng-2": "/tmp/x/2.sock", "eng-3": "/tmp/x/3.sock", "ghost": "/tmp/x/g.sock"}
		}, `socket for "ghost"`},
		"bad rate": {func(c *Config) { c.RateLimit = Rate{PerSecond: -1, Burst: 1} }, "RateLimit"},
		"open state dir": {func(c *Config) {
			os.MkdirAll(c.StateDir, 0o755)
			os.Chmod(c.StateDir, 0o755)
		}, "chmod 700"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, tc.mutate)
			if _, err := New(h.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	h := newHarness(t, func(c *Config) {
		c.HelloTimeout, c.FrameTimeout, c.WriteTimeout, c.AckTimeout = 0, 0, 0, 0
	})
	s, err := New(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c := s.cfg; c.HelloTimeout != 2*time.Second || c.MaxMessage != 16<<10 || c.QueueLimit != 1000 ||
		c.RateLimit != (Rate{20, 40}) || c.MaxPreLogin != 64 || c.WriteTimeout != 5*time.Second {
		t.Errorf("defaults not applied: %+v", c)
	}
	if _, err := New(h.cfg); err == nil || !strings.Contains(err.Error(), "in use by another relay") {
		t.Fatalf("second New on the same state dir = %v", err)
	}
	s.j.close()
}

// A relay that stopped frees its state dir at once, even while another
// copy of the lock's file descriptor lives on (a child between fork and
// exec holds one): the next relay on that dir starts.
func TestStateDirFreeAfterClose(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	s, err := New(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	dup, err := syscall.Dup(int(s.j.lock.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(dup)
	s.j.close()
	s2, err := New(h.cfg)
	if err != nil {
		t.Fatalf("New after the first relay released the dir: %v", err)
	}
	s2.j.close()
}

func TestSocket(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	// A socket left by a relay that crashed is replaced.
	sock := h.cfg.Sockets["eng-1"]
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	h.start()
	// Agents' sockets are for their containers' uids; the operator's for
	// this user alone.
	for id, want := range map[string]os.FileMode{"eng-1": 0o666, Operator: 0o600} {
		st, err := os.Stat(h.cfg.Sockets[id])
		if err != nil || st.Mode().Perm() != want {
			t.Fatalf("%s's socket: %v, mode %v, want %v", id, err, st.Mode(), want)
		}
	}
	// A second relay on the same socket is refused.
	other := newHarness(t, func(c *Config) { c.Credentials = h.cfg.Credentials; c.Sockets = h.cfg.Sockets })
	s2, err := New(other.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Serve(context.Background()); err == nil || !strings.Contains(err.Error(), "another relay") {
		t.Fatalf("second Serve = %v", err)
	}
	h.stop()
	for id, p := range h.cfg.Sockets {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s's socket left behind after Serve returned: %v", id, err)
		}
	}
	// Something that is not a socket is never removed.
	os.WriteFile(sock, []byte("precious"), 0o600)
	s3, err := New(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s3.Serve(context.Background()); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Serve over a file = %v", err)
	}
}

// The relay stops rather than keep deciding without an audit record.
func TestAuditFailureStopsRelay(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.start()
	op := h.dial(Operator)
	h.cfg.Audit.Close()
	op.Send("eng-1", "unrecorded")
	select {
	case err := <-h.done:
		if err == nil || !strings.Contains(err.Error(), "audit") {
			t.Fatalf("Serve = %v, want an audit error", err)
		}
		h.cancel = nil
	case <-time.After(5 * time.Second):
		t.Fatal("relay kept running without its audit log")
	}
}

// Records after the journal's last audited mark belong to a commit the
// relay stopped in, maybe before their audit lines were written: the next
// start records them again before delivering anything; a clean restart
// records nothing again.
func TestUnauditedCommitIsRecordedAgain(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.start()
	if _, err := h.dial(Operator).Send("eng-1", "audited"); err != nil {
		t.Fatal(err)
	}
	h.stop()
	h.start()
	h.stop()
	if n := strings.Count(string(readAudit(t, h)), "recorded again"); n != 0 {
		t.Fatalf("a clean restart recorded %d lines again", n)
	}
	path := filepath.Join(h.cfg.StateDir, "journal")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	// As a kill between the journal's write and the audit log's leaves it.
	fmt.Fprintf(f, `{"op":"msg","msg":{"id":99,"from":"eng-2","to":"eng-1","kind":"message","body":"cut short","time":"2025-01-02T15:04:05Z"}}`+"\n")
	f.Close()
	h.start()
	a := h.waitFor("send recorded again", func(a auditLine) bool {
		return a.Event == "send" && a.Actor == "eng-2" && strings.HasPrefix(a.Detail, "id=99 ") && strings.Contains(a.Detail, "recorded again")
	})
	if !strings.Contains(a.Detail, digest("cut short")) {
		t.Errorf("recorded again without the body's digest: %s", a.Detail)
	}
	got := receive(t, h.subscribe("eng-1"), 2)
	if got[1].ID != 99 {
		t.Errorf("delivered %+v, want id 99 second", got)
	}
}

func readAudit(t *testing.T, h *harness) []byte {
	t.Helper()
	b, err := os.ReadFile(h.auditPath)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
