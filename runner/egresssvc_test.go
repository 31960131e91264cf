package runner

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/runner-dev/runner/internal/audit"
	"github.com/runner-dev/runner/internal/egress/rules"
	"github.com/runner-dev/runner/internal/engine"
	"github.com/runner-dev/runner/internal/state"
)

// get sends one absolute-URI request through agent's proxy socket, as the
// in-container forwarder would pass it on, and returns status and body.
func egressGet(t *testing.T, st state.Run, agent, rawURL string) (int, string) {
	t.Helper()
	var c net.Conn
	var err error
	for range 100 { // the socket appears once Run has started the proxy
		if c, err = net.Dial("unix", st.EgressSocket(agent)); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("agent %s's proxy socket: %v", agent, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	u, _ := url.Parse(rawURL)
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", rawURL, u.Host)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the proxy's answer: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestEgressServiceServesReloadsAndAudits(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://") // 127.0.0.1:PORT: only an IP entry reaches loopback

	st := state.Run{Root: t.TempDir(), Name: "r"}
	if err := st.Create(); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"eng", "ops"} {
		if err := st.CreateEgressAgentDir(a); err != nil {
			t.Fatal(err)
		}
	}
	allow := func(entries ...string) rules.Entries { return rules.Entries{Allow: entries, Deny: []string{}} }

	// No rules file yet: nothing to serve, and Run waits without failing.
	f, err := loadEgressRules(st)
	if err != nil || len(f) != 0 {
		t.Fatalf("no egress.json: %v %v", f, err)
	}
	s := newEgressService(st)
	if err := s.reloadRules(context.Background(), f, ""); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx) }()

	// apply wrote rules for eng: a new proxy serves eng's socket.
	if err := s.reloadRules(ctx, rules.File{"eng": allow(addr)}, ""); err != nil {
		t.Fatal(err)
	}
	if code, body := egressGet(t, st, "eng", srv.URL+"/x"); code != 200 || body != "hello" {
		t.Fatalf("allowed request: %d %q", code, body)
	}
	if _, err := os.Stat(st.EgressSocket("ops")); err == nil {
		t.Error("ops has a proxy socket without egress")
	}

	// Rules changed in place: the same destination is now refused.
	if err := s.reloadRules(ctx, rules.File{"eng": allow("example.com")}, ""); err != nil {
		t.Fatal(err)
	}
	code, body := egressGet(t, st, "eng", srv.URL+"/x")
	if code != 403 || !strings.Contains(body, `agent "eng"`) {
		t.Fatalf("after the rules change: %d %q, want the 403 one-liner", code, body)
	}

	// ops gains egress: a new proxy, both sockets served.
	if err := s.reloadRules(ctx, rules.File{"eng": allow("example.com"), "ops": allow(addr)}, ""); err != nil {
		t.Fatal(err)
	}
	if code, _ := egressGet(t, st, "ops", srv.URL+"/y"); code != 200 {
		t.Fatalf("ops after gaining egress: %d", code)
	}

	cancel()
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
	// Every decision is in the run's audit log, which still verifies.
	log, err := os.ReadFile(st.Audit())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"eng"`, `"ops"`, addr} {
		if !strings.Contains(string(log), want) {
			t.Errorf("audit log lacks %s:\n%s", want, log)
		}
	}
	if n, err := audit.Verify(st.Audit()); err != nil || n < 3 {
		t.Errorf("audit log: %d entries, %v; want at least the 3 decisions, chained", n, err)
	}
}

// Refusals name the agents file apply read (services.json's agents_file),
// and a name they could not show as is falls back to the default.
func TestEgressRefusalsNameTheAgentsFile(t *testing.T) {
	st := state.Run{Root: t.TempDir(), Name: "r"}
	if err := st.Create(); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateEgressAgentDir("eng"); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"/x/team.hcl": "team.hcl", "/x/my agents.hcl": "", "": ""} {
		if _, err := writeServicesConfig(st, engine.Info{Name: "docker"}, path); err != nil {
			t.Fatal(err)
		}
		var sf servicesFile
		data, err := os.ReadFile(st.ServicesConfig())
		if err == nil {
			err = json.Unmarshal(data, &sf)
		}
		if err != nil || sf.AgentsFile != want {
			t.Errorf("agents file %q: services.json says %q (%v), want %q", path, sf.AgentsFile, err, want)
		}
	}
	s := newEgressService(st)
	hc := hostConfig{Egress: rules.File{"eng": {Allow: []string{"example.com"}, Deny: []string{}}}, Services: servicesFile{AgentsFile: "team.hcl"}}
	if err := s.Reload(context.Background(), hc); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx) }()
	code, body := egressGet(t, st, "eng", "http://192.0.2.1/")
	if code != 403 || !strings.Contains(body, "team.hcl") {
		t.Errorf("refusal: %d %q, want a 403 naming team.hcl", code, body)
	}
	cancel()
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
