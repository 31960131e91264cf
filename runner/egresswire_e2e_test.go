package runner_test

import (
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runner-dev/runner/internal/profile"
	"github.com/runner-dev/runner/internal/state"
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
// proxy resolves these names to the host's loopback, where the test's
// servers listen; nothing reaches the internet.
const testHosts = "allowed.test=127.0.0.1,denied.test=127.0.0.1,other.test=127.0.0.1,example.com=127.0.0.1"

// From inside a container on network none, through runner-agent's
// forwarder on 127.0.0.1:3128, the agent's own proxy socket and the real
// proxy in the run's host-services process started by apply: allowed
// names are reached over HTTP and HTTPS (CONNECT), denied and unlisted
// names get the one-line 403, and there is no other way out.
func TestEgressFromInsideAContainer(t *testing.T) {
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello from "+r.Host) })
	plain := httptest.NewServer(hello)
	defer plain.Close()
	tlsSrv := httptest.NewTLSServer(hello) // its certificate names example.com
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
		// The names resolve to loopback, which only an IP entry may reach.
		cfg, _ := writeConfig(t, fmt.Sprintf(`
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
    allow = ["allowed.test:%[6]s", "denied.test:%[6]s", "example.com:%[7]s", "127.0.0.1:%[6]s", "127.0.0.1:%[7]s"]
    deny  = ["denied.test"]
  }
}
agent "rev" {
  image   = %[3]q
  command = ["sleep", "infinity"]
  memory  = "64MiB"
  egress {
    allow = ["allowed.test:%[6]s", "127.0.0.1:%[6]s"]
  }
}
`, run, te.accept, testImage, bins, caDir, hp, sp))
		res, err := newRunner(te).Apply(ctx(t), cfg)
		if err != nil {
			t.Fatalf("apply: %v", err)
		}
		st, err := state.ForRun(run)
		if err != nil {
			t.Fatal(err)
		}
		eng := res.IDs["eng"]

		get := func(url string, ca ...string) (int, string) {
			t.Helper()
			var out struct {
				Status int    `json:"status"`
				Body   string `json:"body"`
				Err    string `json:"err"`
			}
			execJSON(t, te, eng, &out, append([]string{"/probe/testprobe", "http-get", url}, ca...)...)
			if out.Err != "" {
				t.Logf("http-get %s: %s", url, out.Err)
			}
			return out.Status, out.Body
		}

		t.Run("allowed-http", func(t *testing.T) {
			u := "http://allowed.test:" + hp + "/"
			code, body := get(u)
			for i := 0; code == 0 && i < 20; i++ { // the proxy's socket may not be bound yet
				code, body = get(u)
			}
			if code != 200 || body != "hello from allowed.test:"+hp {
				t.Errorf("GET %s: %d %q", u, code, body)
			}
		})
		t.Run("allowed-https-connect", func(t *testing.T) {
			u := "https://example.com:" + sp + "/"
			if code, body := get(u, "/ca/ca.pem"); code != 200 || body != "hello from example.com:"+sp {
				t.Errorf("GET %s: %d %q", u, code, body)
			}
		})
		t.Run("unlisted-refused", func(t *testing.T) {
			code, body := get("http://other.test:" + hp + "/")
			if code != 403 || strings.Contains(body, "\n") ||
				!strings.Contains(body, `agent "eng"`) || !strings.Contains(body, `"other.test:`+hp+`"`) {
				t.Errorf("unlisted name: %d %q, want the one-line 403 with the entry to add", code, body)
			}
		})
		t.Run("denied-refused", func(t *testing.T) {
			code, body := get("http://denied.test:" + hp + "/")
			if code != 403 || !strings.Contains(body, `deny entry "denied.test"`) {
				t.Errorf("denied name: %d %q", code, body)
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
			for _, addr := range []string{hostAddr(t) + ":" + hp, "127.0.0.1:" + hp, "1.1.1.1:443"} {
				var got string
				execJSON(t, te, eng, &got, "/probe/testprobe", "tcp-dial", addr)
				if got == "ok" {
					t.Errorf("a raw TCP connect to %s from inside the container succeeded", addr)
				}
			}
		})
		t.Run("audited", func(t *testing.T) {
			// The proxy writes folded events within a second.
			want := []string{"egress_allow", "allowed.test", "example.com", "egress_deny", "other.test", "denied.test"}
			var missing []string
			for i := 0; i < 50; i++ {
				log, err := os.ReadFile(st.Audit())
				if err != nil {
					t.Fatal(err)
				}
				missing = missing[:0]
				for _, w := range want {
					if !strings.Contains(string(log), w) {
						missing = append(missing, w)
					}
				}
				if len(missing) == 0 {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if len(missing) > 0 {
				t.Errorf("the audit log does not mention %v", missing)
			}
		})
	})
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
