package runner_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runner-dev/runner/internal/audit"
	"github.com/runner-dev/runner/internal/profile"
	"github.com/runner-dev/runner/internal/state"
	"github.com/runner-dev/runner/runner"
)

func port(t *testing.T, u string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// testHosts is RUNNER_TEST_EGRESS_HOSTS for the run's host-services
// process (runner is built with -tags runnertest, see buildBinaries): the
// proxy resolves these names as given. Loopback is where the test's
// servers listen; pub.test's TEST-NET-3 address is judged as any public
// one and dialled on loopback; meta.test and priv.test are what a hostile
// DNS answer would give. Nothing reaches the internet.
const testHosts = "allowed.test=127.0.0.1,denied.test=127.0.0.1,other.test=127.0.0.1,example.com=127.0.0.1," +
	"pub.test=203.0.113.10,lo.test=127.0.0.1,meta.test=169.254.169.254,priv.test=10.1.2.3"

// egressWireConfig is the run of TestEgressFromInsideAContainer; tlsAllow
// is eng's entry for the TLS server (the rules change drops it).
func egressWireConfig(run string, te *testEngine, caDir, hp, sp, tlsAllow string) string {
	return fmt.Sprintf(`
run %[1]q {
  %[2]s
}
agent "eng" {
  image   = %[3]q
  command = ["sleep", "infinity"]
  memory  = "64MiB"
  mount {
    source = %[4]q
    target = "/probe"
  }
  mount {
    source = %[5]q
    target = "/ca"
  }
  egress {
    allow = ["allowed.test:%[6]s", "denied.test:%[6]s", %[8]s "127.0.0.1:%[6]s", "127.0.0.1:%[7]s",
             "pub.test:%[6]s", "lo.test:9", "meta.test", "priv.test"]
    deny  = ["denied.test"]
  }
}
agent "rev" {
  image   = %[3]q
  command = ["sleep", "infinity"]
  memory  = "64MiB"
  mount {
    source = %[4]q
    target = "/probe"
  }
  egress {
    allow = ["allowed.test:%[6]s", "127.0.0.1:%[6]s"]
  }
}
`, run, te.accept, testImage, bins, caDir, hp, sp, tlsAllow)
}

// From inside a container on network none, through runner-agent's
// forwarder on 127.0.0.1:3128, the agent's own proxy socket and the real
// proxy in the run's host-services process started by apply: allowed
// names are reached over HTTP and HTTPS (CONNECT); every way around the
// rules gets the one-line 403 (or, inside a tunnel, a TLS alert) and is
// audited; there is no other way out; hostile clients do not stop another
// agent; a rules change closes a now-forbidden open tunnel in place.
func TestEgressFromInsideAContainer(t *testing.T) {
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello from "+r.Host) })
	plain := httptest.NewServer(hello)
	defer plain.Close()
	// The TLS server also serves a git repository over smart HTTP
	// (git http-backend as CGI), for git through CONNECT.
	repos := gitRepoForTest(t)
	mux := http.NewServeMux()
	mux.Handle("/git/", &cgi.Handler{Path: gitHTTPBackend, Root: "/git", Env: []string{"GIT_PROJECT_ROOT=" + repos, "GIT_HTTP_EXPORT_ALL=1"}})
	mux.Handle("/", hello)
	tlsSrv := httptest.NewTLSServer(mux) // its certificate names example.com
	defer tlsSrv.Close()
	hp, sp := port(t, plain.URL), port(t, tlsSrv.URL)

	caDir, err := os.MkdirTemp("", "runner-e2e-ca-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(caDir)
	os.Chmod(caDir, 0o755)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw})
	if err := os.WriteFile(filepath.Join(caDir, "ca.pem"), caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RUNNER_TEST_EGRESS_HOSTS", testHosts) // the services process apply starts inherits it

	forEachEngine(t, func(t *testing.T, te *testEngine) {
		run := runName(t, te, "ewire")
		destroyAtEnd(t, te, run)
		cfg, path := writeConfig(t, egressWireConfig(run, te, caDir, hp, sp, `"example.com:`+sp+`",`))
		r := newRunner(te)
		res, err := r.Apply(ctx(t), cfg)
		if err != nil {
			t.Fatalf("apply: %v", err)
		}
		st, err := state.ForRun(run)
		if err != nil {
			t.Fatal(err)
		}
		eng, rev := res.IDs["eng"], res.IDs["rev"]

		get := func(id, url string, ca ...string) (int, string) {
			t.Helper()
			var out struct {
				Status int    `json:"status"`
				Body   string `json:"body"`
				Err    string `json:"err"`
			}
			execJSON(t, te, id, &out, append([]string{"/probe/testprobe", "http-get", url}, ca...)...)
			if out.Err != "" {
				t.Logf("http-get %s: %s", url, out.Err)
			}
			return out.Status, out.Body
		}
		// refused checks the one-line 403 for agent eng, naming what it must.
		refused := func(what string, code int, body string, want ...string) {
			t.Helper()
			if code != 403 || strings.Contains(body, "\n") || !strings.Contains(body, `agent "eng"`) {
				t.Errorf("%s: %d %q, want the one-line 403 for eng", what, code, body)
			}
			for _, w := range want {
				if !strings.Contains(body, w) {
					t.Errorf("%s: the refusal %q does not say %s", what, body, w)
				}
			}
		}
		raw := func(req string) (int, string) {
			t.Helper()
			var resp string
			execJSON(t, te, eng, &resp, "/probe/testprobe", "proxy-send", req)
			head, body, _ := strings.Cut(resp, "\r\n\r\n")
			code := 0
			fmt.Sscanf(head, "HTTP/1.1 %d", &code)
			return code, strings.TrimSpace(body)
		}

		t.Run("allowed-http", func(t *testing.T) {
			u := "http://allowed.test:" + hp + "/"
			code, body := get(eng, u)
			for i := 0; code == 0 && i < 20; i++ { // the proxy's socket may not be bound yet
				code, body = get(eng, u)
			}
			if code != 200 || body != "hello from allowed.test:"+hp {
				t.Errorf("GET %s: %d %q", u, code, body)
			}
			// A public address, no IP entry needed.
			if code, body := get(eng, "http://pub.test:"+hp+"/"); code != 200 || body != "hello from pub.test:"+hp {
				t.Errorf("GET pub.test: %d %q", code, body)
			}
		})
		t.Run("allowed-https-connect", func(t *testing.T) {
			u := "https://example.com:" + sp + "/"
			if code, body := get(eng, u, "/ca/ca.pem"); code != 200 || body != "hello from example.com:"+sp {
				t.Errorf("GET %s: %d %q", u, code, body)
			}
		})
		t.Run("git-clone-over-https", func(t *testing.T) {
			// git finds the proxy in HTTPS_PROXY like every client.
			res := agentExec(t, te, eng, "git", "-c", "http.sslCAInfo=/ca/ca.pem", "clone", "-q",
				"https://example.com:"+sp+"/git/repo.git", "/tmp/clone")
			if res.ExitCode != 0 {
				t.Fatalf("git clone through the proxy: exit %d: %s %s", res.ExitCode, res.Stdout, res.Stderr)
			}
			if got := agentExec(t, te, eng, "cat", "/tmp/clone/README").Stdout; got != "through the proxy\n" {
				t.Errorf("the clone's README: %q", got)
			}
		})
		t.Run("refused", func(t *testing.T) {
			code, body := get(eng, "http://other.test:"+hp+"/")
			refused("unlisted name", code, body, `"other.test:`+hp+`"`, "agents.hcl")
			code, body = get(eng, "http://denied.test:"+hp+"/")
			refused("denied name", code, body, `deny entry "denied.test"`)
			// pub.test is allowed by name; its address is not.
			code, body = get(eng, "http://203.0.113.10:"+hp+"/")
			refused("IP literal of an allowed name", code, body, "203.0.113.10")
			code, body = get(eng, "http://lo.test:9/")
			refused("a name resolving to loopback", code, body, "loopback")
			code, body = get(eng, "http://meta.test/")
			refused("a name resolving to the metadata address", code, body, "metadata")
			code, body = get(eng, "http://priv.test/")
			refused("a name resolving to a private address", code, body, "private")
			code, body = raw("GET http://allowed.test:" + hp + "/ HTTP/1.1\\r\\nHost: other.test\\r\\n\\r\\n")
			refused("a Host header naming another host", code, body, "other.test")
			// Domain fronting: after the CONNECT's 200 the proxy can only
			// answer with a TLS alert.
			var tun struct{ Connect, Handshake string }
			execJSON(t, te, eng, &tun, "/probe/testprobe", "proxy-tls", "example.com:"+sp, "other.test")
			if !strings.Contains(tun.Connect, " 200 ") || !strings.Contains(tun.Handshake, "access denied") {
				t.Errorf("CONNECT example.com with SNI other.test: %+v, want the tunnel refused with access_denied", tun)
			}
		})
		t.Run("only-its-own-socket-read-only", func(t *testing.T) {
			ls := agentExec(t, te, eng, "ls", "-A", profile.EgressTarget)
			if strings.TrimSpace(ls.Stdout) != "proxy.sock" {
				t.Errorf("%s holds %q, want only proxy.sock", profile.EgressTarget, ls.Stdout)
			}
			var touched string
			execJSON(t, te, eng, &touched, "/probe/testprobe", "touch", profile.EgressTarget+"/x")
			if !strings.Contains(touched, "read-only") {
				t.Errorf("creating a file beside the socket: %q, want a read-only file system", touched)
			}
			c, err := te.raw.ContainerInspect(ctx(t), eng)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, m := range c.Mounts {
				if strings.Contains(m.Source, string(filepath.Separator)+"egress"+string(filepath.Separator)) {
					n++
					if m.Destination != profile.EgressTarget || m.RW || filepath.Base(m.Source) != "eng" {
						t.Errorf("egress mount %s -> %s (rw %v), want eng's own directory read-only", m.Source, m.Destination, m.RW)
					}
				}
			}
			if n != 1 {
				t.Errorf("%d egress mounts in eng's container, want 1 (its own)", n)
			}
			mi := agentExec(t, te, eng, "cat", "/proc/self/mountinfo")
			if strings.Contains(mi.Stdout, "/egress/rev") {
				t.Errorf("rev's proxy directory is visible in eng's container:\n%s", mi.Stdout)
			}
		})
		t.Run("no-other-way-out", func(t *testing.T) {
			var ifs []string
			execJSON(t, te, eng, &ifs, "/probe/testprobe", "netifs")
			if len(ifs) != 1 || ifs[0] != "lo" {
				t.Errorf("interfaces %v, want only lo", ifs)
			}
			host := hostAddr(t)
			for _, addr := range []string{host + ":" + hp, "127.0.0.1:" + hp, "1.1.1.1:443"} {
				var got string
				execJSON(t, te, eng, &got, "/probe/testprobe", "tcp-dial", addr)
				if got == "ok" {
					t.Errorf("a raw TCP connect to %s from inside the container succeeded", addr)
				}
			}
			for _, addr := range []string{"1.1.1.1:53", host + ":53", "127.0.0.53:53"} {
				var got string
				execJSON(t, te, eng, &got, "/probe/testprobe", "udp-dns", addr)
				if got == "ok" {
					t.Errorf("a UDP DNS query to %s from inside the container was answered", addr)
				}
			}
			for _, addr := range []string{"1.1.1.1", host} {
				var got string
				execJSON(t, te, eng, &got, "/probe/testprobe", "icmp", addr)
				if got == "ok" {
					t.Errorf("an ICMP echo to %s from inside the container was answered", addr)
				}
			}
		})
		t.Run("hostile-agent-another-agent-still-served", func(t *testing.T) {
			type hostile struct {
				Garbage   []string
				Oversized string
				Connects  int
				Answered  int
				Held      int
			}
			done := make(chan hostile, 1)
			go func() {
				var h hostile
				res, err := te.eng.Exec(context.Background(), eng, "", []string{"/probe/testprobe", "egress-hostile", "10000", "300", "3", "/tmp/held"})
				if err == nil {
					json.Unmarshal([]byte(res.Stdout), &h)
				}
				done <- h
			}()
			// While eng holds 300 half-written requests (past its cap of
			// 256), rev is served.
			for i := 0; i < 600; i++ {
				if agentExec(t, te, eng, "test", "-f", "/tmp/held").ExitCode == 0 {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if code, body := get(rev, "http://allowed.test:"+hp+"/"); code != 200 || body != "hello from allowed.test:"+hp {
				t.Errorf("rev's request while eng is hostile: %d %q", code, body)
			}
			h := <-done
			for i, g := range h.Garbage {
				if !strings.HasPrefix(g, "HTTP/1.1 400 ") {
					t.Errorf("garbage %d: %q, want a 400", i, g)
				}
			}
			if !strings.HasPrefix(h.Oversized, "HTTP/1.1 431 ") {
				t.Errorf("a 16 KiB request head: %q, want a 431", h.Oversized)
			}
			if h.Connects != 10000 || h.Answered != 10000 || h.Held < 256 {
				t.Errorf("hostile run: %+v, want 10000 CONNECTs answered and >= 256 held", h)
			}
			if code, _ := get(rev, "http://allowed.test:"+hp+"/"); code != 200 {
				t.Errorf("rev's request after eng's flood: %d", code)
			}
		})
		t.Run("rules-change-closes-open-tunnel", func(t *testing.T) {
			agentExec(t, te, eng, "rm", "-f", "/tmp/open")
			type tunnel struct {
				Connect, Handshake, Ended string
				HeldMS                    int64 `json:"held_ms"`
			}
			done := make(chan tunnel, 1)
			go func() {
				var tun tunnel
				res, err := te.eng.Exec(context.Background(), eng, "", []string{"/probe/testprobe", "proxy-tls", "example.com:" + sp, "example.com", "120", "/tmp/open"})
				if err == nil {
					json.Unmarshal([]byte(res.Stdout), &tun)
				}
				done <- tun
			}()
			for i := 0; i < 300; i++ {
				if agentExec(t, te, eng, "test", "-f", "/tmp/open").ExitCode == 0 {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err := os.WriteFile(path, []byte(egressWireConfig(run, te, caDir, hp, sp, "")), 0o644); err != nil {
				t.Fatal(err)
			}
			res2, err := r.Apply(ctx(t), load(t, path))
			if err != nil {
				t.Fatalf("apply without example.com: %v", err)
			}
			if res2.IDs["eng"] != eng {
				t.Errorf("the rules change replaced eng's container: %s -> %s", eng, res2.IDs["eng"])
			}
			tun := <-done
			if tun.Handshake != "ok" || tun.Ended == "ok" || tun.HeldMS >= 120000 {
				t.Errorf("open tunnel to example.com: %+v, want it closed by the rules change", tun)
			}
			if code, _ := get(eng, "https://example.com:"+sp+"/", "/ca/ca.pem"); code == 200 {
				t.Error("example.com is still reached after the rules change")
			}
		})
		t.Run("audited", func(t *testing.T) {
			// The proxy writes folded events within a second.
			want := map[string]string{
				"allowed.test:" + hp: "egress_allow", "pub.test:" + hp: "egress_allow", "example.com:" + sp: "egress_allow",
				"other.test:" + hp: "egress_deny", "denied.test:" + hp: "egress_deny", "203.0.113.10:" + hp: "egress_deny",
				"lo.test:9": "egress_deny", "meta.test:80": "egress_deny", "priv.test:80": "egress_deny",
				"flood.test:443": "egress_deny",
			}
			var missing []string
			for i := 0; i < 50; i++ {
				seen := map[string]bool{}
				if err := audit.Read(st.Audit(), func(e audit.Event) error {
					seen[e.Target+" "+e.Event] = seen[e.Target+" "+e.Event] || e.Actor == "eng"
					if strings.Contains(e.Detail, "SNI") || strings.Contains(e.Detail, "server name") {
						seen["sni"] = true
					}
					if strings.Contains(e.Detail, "rules changed") {
						seen["revoked"] = true
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				missing = missing[:0]
				for target, ev := range want {
					if !seen[target+" "+ev] {
						missing = append(missing, ev+" "+target)
					}
				}
				for _, k := range []string{"sni", "revoked"} {
					if !seen[k] {
						missing = append(missing, k)
					}
				}
				if len(missing) == 0 {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if len(missing) > 0 {
				t.Errorf("the audit log lacks %v", missing)
			}
		})
		// runner egress lists each refusal with the line to paste, and
		// egress check agrees with what the proxy did (under the rules now).
		t.Run("report-and-check-agree", func(t *testing.T) {
			out, errOut, err := cli(te, "egress", path, "eng")
			if err != nil {
				t.Fatalf("runner egress: %v\n%s", err, errOut)
			}
			line := `allow = ["allowed.test:` + hp + `", "denied.test:` + hp + `", "127.0.0.1:` + hp + `", "127.0.0.1:` + sp + `", "pub.test:` + hp + `", "lo.test:9", "meta.test", "priv.test", "other.test:` + hp + `"]`
			for _, want := range []string{"eng: 9 rules, ", "denied other.test:" + hp + ":", line, `deny entry "denied.test" decides`} {
				if !strings.Contains(string(out), want) {
					t.Errorf("runner egress lacks %q:\n%s", want, out)
				}
			}
			js, errOut, err := cli(te, "egress", path, "-o", "json")
			if err != nil {
				t.Fatalf("runner egress -o json: %v\n%s", err, errOut)
			}
			var rep runner.EgressReport
			if err := json.Unmarshal(js, &rep); err != nil {
				t.Fatal(err)
			}
			checked := 0
			for _, a := range rep.Agents {
				for _, d := range a.Destinations {
					// Decided by name alone, under the rules in force now.
					// (A Host-header refusal of an allowed name is not one.)
					if d.Host == "example.com" || d.Host == "lo.test" || d.Host == "meta.test" || d.Host == "priv.test" || d.Allowed > 0 && d.Denied > 0 {
						continue
					}
					_, _, err := cli(te, "egress", "check", path, a.Agent, fmt.Sprintf("%s:%d", d.Host, d.Port))
					var ee *exec.ExitError
					code := 0
					if errors.As(err, &ee) {
						code = ee.ExitCode()
					}
					if want := map[bool]int{true: 0, false: 1}[d.Denied == 0]; code != want {
						t.Errorf("%s %s:%d: the proxy allowed %d, denied %d; egress check exits %d", a.Agent, d.Host, d.Port, d.Allowed, d.Denied, code)
					}
					checked++
				}
			}
			if checked < 5 {
				t.Errorf("only %d destinations checked: %+v", checked, rep)
			}
			// status shows the same figures per agent.
			sr, err := r.Status(ctx(t), load(t, path))
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range sr.Agents {
				var want runner.EgressAgent
				for _, ea := range rep.Agents {
					if ea.Agent == a.Agent {
						want = ea
					}
				}
				if a.Egress == nil || a.Egress.Rules != want.Rules || a.Egress.Allowed < want.Allowed || a.Egress.Denied < want.Denied || a.Egress.Denied == 0 && a.Agent == "eng" {
					t.Errorf("status of %s: egress %+v, runner egress says %+v", a.Agent, a.Egress, want)
				}
			}
			out, _, err = cli(te, "status", path)
			if err != nil || !strings.Contains(string(out), "  eng: egress: 9 rules, ") || !strings.Contains(string(out), "  rev: egress: 2 rules, ") {
				t.Errorf("runner status: %v\n%s", err, out)
			}
		})
	})
}

// gitHTTPBackend is git's smart-HTTP server, a CGI program.
const gitHTTPBackend = "/usr/lib/git-core/git-http-backend"

// gitRepoForTest makes a bare repository repo.git holding one commit, in
// a directory the CGI serves, and returns that directory.
func gitRepoForTest(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(gitHTTPBackend); err != nil {
		t.Fatalf("git over HTTPS needs %s on the host (Debian/Ubuntu: apt-get install git): %v", gitHTTPBackend, err)
	}
	dir := t.TempDir()
	work := filepath.Join(dir, "work")
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q", "-b", "main", work)
	os.WriteFile(filepath.Join(work, "README"), []byte("through the proxy\n"), 0o644)
	git("-C", work, "add", "README")
	git("-C", work, "commit", "-q", "-m", "first")
	git("clone", "-q", "--bare", work, filepath.Join(dir, "repo.git"))
	return dir
}

// hostAddr is one of the host's non-loopback IPv4 addresses, or a
// documentation address if it has none.
func hostAddr(t *testing.T) string {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return "192.0.2.1"
}
