package runner

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runner-dev/runner/internal/audit"
	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/egress/proxy"
	"github.com/runner-dev/runner/internal/state"
)

func TestEgressReportFromTheAuditLog(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "agents.hcl")
	os.WriteFile(file, []byte(`run "r" {
  egress_default = ["api.anthropic.com"]
}
agent "eng" {
  image = "x"
  command = ["sleep", "1"]
  egress {
    allow = ["github.com", "lo.test:9"]
    deny  = ["gist.github.com"]
  }
}
agent "rev" {
  image = "x"
  command = ["sleep", "1"]
}
`), 0o644)
	cfg, diags := config.NewLoader().Load(file, nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	root := t.TempDir()
	st := state.Run{Root: root, Name: "r"}
	if err := st.Create(); err != nil {
		t.Fatal(err)
	}
	log, err := audit.Open(st.Audit())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []proxy.Event{
		{Agent: "eng", Kind: "allow", Method: "CONNECT", Host: "github.com", Port: 443, Addr: netip.MustParseAddr("140.82.112.3"), Rule: "github.com", BytesUp: 1000, BytesDown: 50000, Count: 1},
		{Agent: "eng", Kind: "allow", Method: "CONNECT", Host: "github.com", Port: 443, Rule: "github.com", BytesUp: 10, BytesDown: 20, Count: 4},
		{Agent: "eng", Kind: "deny", Method: "CONNECT", Host: "pypi.org", Port: 443, Entry: "pypi.org", Reason: "runner egress: CONNECT pypi.org:443 refused", Count: 3},
		{Agent: "eng", Kind: "deny", Method: "GET", Host: "gist.github.com", Port: 80, Rule: "gist.github.com", Reason: "deny entry", Count: 1},
		{Agent: "eng", Kind: "deny", Method: "GET", Host: "lo.test", Port: 9, Addr: netip.MustParseAddr("127.0.0.1"), Reason: "loopback", Count: 1},
		{Agent: "eng", Kind: "bad_request", Reason: "garbage", Count: 7},
		{Agent: "rev", Kind: "deny", Method: "CONNECT", Host: "pypi.org", Port: 8443, Count: 1},
		{Agent: "ghost", Kind: "deny", Host: "x.org", Port: 443, Count: 1}, // not in the config
	} {
		if err := log.Append(e.Audit()); err != nil {
			t.Fatal(err)
		}
	}
	log.Append(audit.Event{Event: "apply", Actor: "runner", Target: "r"})
	log.Close()

	rep, err := (&Runner{StateRoot: root}).EgressReport(cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Agents) != 2 {
		t.Fatalf("agents %+v, want eng, rev", rep.Agents)
	}
	eng, rev := rep.Agents[0], rep.Agents[1]
	if got := eng.Line(); got != "3 rules, 5 allowed, 5 denied" || eng.Errors != 7 || eng.BytesDown != 50020 {
		t.Errorf("eng: %q, %+v", got, eng)
	}
	if rev.Source != "egress_default" || rev.Line() != "1 rule, 0 allowed, 1 denied" || (EgressAgent{Source: "none"}).Line() != "" {
		t.Errorf("rev %+v", rev)
	}
	byHost := map[string]EgressDest{}
	for _, d := range eng.Destinations {
		byHost[d.Host] = d
	}
	if d := byHost["pypi.org"]; d.Denied != 3 || d.Entry != "pypi.org" || d.Line != `allow = ["github.com", "lo.test:9", "pypi.org"]` || !strings.Contains(d.Where, `agent "eng"'s egress block`) {
		t.Errorf("pypi.org: %+v", d)
	}
	if d := byHost["gist.github.com"]; d.Line != "" || !strings.Contains(d.Note, `deny entry "gist.github.com"`) {
		t.Errorf("gist.github.com: %+v, want the deny entry named and no line", d)
	}
	if d := byHost["lo.test"]; d.Entry != "127.0.0.1:9" || !strings.Contains(d.Note, "loopback") {
		t.Errorf("lo.test: %+v, want an IP entry for the loopback address, with a warning", d)
	}
	if d := byHost["github.com"]; d.Allowed != 5 || d.Denied != 0 || d.Line != "" {
		t.Errorf("github.com: %+v", d)
	}
	if len(rev.Destinations) != 1 || rev.Destinations[0].Line != `egress_default = ["api.anthropic.com", "pypi.org:8443"]` {
		t.Errorf("rev: %+v", rev.Destinations)
	}

	// One agent only; a run without an audit log has nothing to report.
	rep, err = (&Runner{StateRoot: root}).EgressReport(cfg, "rev")
	if err != nil || len(rep.Agents) != 1 || rep.Agents[0].Agent != "rev" {
		t.Errorf("rev only: %+v %v", rep, err)
	}
	rep, err = (&Runner{StateRoot: t.TempDir()}).EgressReport(cfg, "")
	if err != nil || len(rep.Agents) != 2 || rep.Agents[0].Allowed != 0 {
		t.Errorf("no audit log: %+v %v", rep, err)
	}
}
