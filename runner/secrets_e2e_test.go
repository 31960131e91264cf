package runner_test

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runner-dev/runner/internal/egress/inject"
	"github.com/runner-dev/runner/internal/state"
	"github.com/runner-dev/runner/runner"
)

// headerLog records the x-api-key each test server received, by server.
type headerLog struct {
	mu   sync.Mutex
	last map[string]string
	n    map[string]int
}

func (h *headerLog) handler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.last[name] = r.Header.Get("X-Api-Key")
		h.n[name]++
		h.mu.Unlock()
		io.WriteString(w, "hello from "+name)
	})
}

func (h *headerLog) get(name string) (string, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last[name], h.n[name]
}

func randomValue(prefix string, n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// A proxied secret and a file secret, end to end on both engines: the
// agent's environment holds only a stand-in, the proxy in the run's host
// services puts the real key on the wire toward the bound host (verified
// TLS) and nowhere else, the file secret is a read-only 0400 tmpfs file
// of the agent's uid that another agent lacks, the values are in no
// inspect output, environ, CLI output or state file but the store, and a
// rotated from_file value is used by the next request with the container
// kept.
func TestSecretsEndToEnd(t *testing.T) {
	hl := &headerLog{last: map[string]string{}, n: map[string]int{}}
	api := httptest.NewTLSServer(hl.handler("api")) // *.example.com
	defer api.Close()
	otherCA, err := inject.LoadCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	evilCert, err := otherCA.Leaf("evil.example.com")
	if err != nil {
		t.Fatal(err)
	}
	evil := httptest.NewUnstartedServer(hl.handler("evil"))
	evil.TLS = &tls.Config{Certificates: []tls.Certificate{*evilCert}}
	evil.StartTLS()
	defer evil.Close()
	sp, ep := port(t, api.URL), port(t, evil.URL)

	caDir, err := os.MkdirTemp("", "runner-e2e-ca-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(caDir)
	os.Chmod(caDir, 0o755)
	caFile := filepath.Join(caDir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	// The host services of a runnertest build resolve these names to
	// loopback and trust the test server's CA for destinations (and
	// nothing else: evil.example.com's CA is in no pool).
	t.Setenv("RUNNER_TEST_EGRESS_HOSTS", "api.example.com=127.0.0.1,other.example.com=127.0.0.1,evil.example.com=127.0.0.1")
	t.Setenv("RUNNER_TEST_INJECT_ROOTS", caFile)

	deploy := randomValue("deploy-", 20)
	t.Setenv("RUNNER_E2E_DEPLOY", deploy)

	forEachEngine(t, func(t *testing.T, te *testEngine) {
		real := randomValue("sk-ant-api03-", 24)
		keyFile := filepath.Join(t.TempDir(), "anthropic-key")
		if err := os.WriteFile(keyFile, []byte(real+"\n"), 0o600); err != nil { // a 0600 host key file
			t.Fatal(err)
		}
		run := runName(t, te, "secrets")
		destroyAtEnd(t, te, run)
		cfg, path := writeConfig(t, fmt.Sprintf(`
run %[1]q {
  %[2]s
}
agent "eng" {
  image   = %[3]q
  # The agent prints its file secret into its pane in two writes a second
  # apart: the recorder gets the value split across chunks.
  command = ["sh", "-c", "head -c 12 /run/secrets/deploy; sleep 1; tail -c +13 /run/secrets/deploy; echo; echo printed-done; exec sleep infinity"]
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
    allow = ["api.example.com:%[6]s", "other.example.com:%[6]s", "evil.example.com:%[7]s", "127.0.0.1:%[6]s", "127.0.0.1:%[7]s"]
  }
  secret "ANTHROPIC_API_KEY" {
    from_file = %[8]q
    inject {
      host   = ["api.example.com:%[6]s", "evil.example.com:%[7]s"]
      header = "x-api-key"
    }
  }
  secret "DEPLOY_KEY" {
    from_env = "RUNNER_E2E_DEPLOY"
    file     = "/run/secrets/deploy"
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
}
`, run, te.accept, testImage, bins, caDir, sp, ep, keyFile))
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
		values := map[string]string{"proxied key": real, "file secret": deploy}

		send := func(url, envVar string, ca ...string) (int, string) {
			t.Helper()
			var out struct {
				Status int    `json:"status"`
				Body   string `json:"body"`
				Err    string `json:"err"`
			}
			argv := append([]string{"/probe/testprobe", "http-header", url, "x-api-key", envVar}, ca...)
			for i := 0; i < 20; i++ { // the proxy's socket may not be bound yet
				execJSON(t, te, eng, &out, argv...)
				if out.Status != 0 {
					break
				}
			}
			if out.Err != "" {
				t.Logf("%s: %s", url, out.Err)
			}
			return out.Status, out.Body
		}
		apiURL := "https://api.example.com:" + sp + "/v1/messages"

		var envs struct {
			Read int    `json:"read"`
			Of   int    `json:"of"`
			Env  string `json:"env"`
		}
		execJSON(t, te, eng, &envs, "/probe/testprobe", "environ")
		standIn := ""
		for _, kv := range strings.Split(envs.Env, "\n") {
			if v, ok := strings.CutPrefix(kv, "ANTHROPIC_API_KEY="); ok {
				standIn = v
			}
		}
		t.Run("environment-has-only-the-stand-in", func(t *testing.T) {
			if envs.Read == 0 {
				t.Errorf("read none of %d /proc/PID/environ", envs.Of)
			}
			// From outside: every process of both containers, by host pid
			// (the agent cannot read them all from inside).
			for _, id := range []string{eng, rev} {
				c, err := te.raw.ContainerInspect(ctx(t), id)
				if err != nil {
					t.Fatal(err)
				}
				pids := containerPids(t, c.State.Pid)
				n := 0
				for _, p := range pids {
					b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p))
					if err != nil {
						continue
					}
					n++
					for what, v := range values {
						if strings.Contains(string(b), v) {
							t.Errorf("the %s is in the environment of host pid %d (%s)", what, p, id[:12])
						}
					}
				}
				if n == 0 {
					t.Errorf("read no environment of %s's %d processes from the host", id[:12], len(pids))
				}
			}
			if len(standIn) != len(real) || !strings.HasPrefix(standIn, "sk-ant-api03-") || standIn == real {
				t.Errorf("ANTHROPIC_API_KEY in the container is %q: want a stand-in of the real key's shape", standIn)
			}
			for what, v := range values {
				if strings.Contains(envs.Env, v) {
					t.Errorf("the %s is in a process environment in the container", what)
				}
			}
			if !strings.Contains(envs.Env, "SSL_CERT_FILE=/run/runner-trust/bundle.pem") || !strings.Contains(envs.Env, "NODE_EXTRA_CA_CERTS=/run/runner-trust/bundle.pem") {
				t.Error("the trust bundle variables are not set")
			}
		})
		t.Run("injected-toward-the-bound-host", func(t *testing.T) {
			code, body := send(apiURL, "ANTHROPIC_API_KEY")
			if got, _ := hl.get("api"); code != 200 || body != "hello from api" || got != real {
				t.Errorf("stand-in to api.example.com: %d %q, server received %q; want the real key", code, body, redact(got, real))
			}
		})
		t.Run("stand-in-elsewhere-unchanged", func(t *testing.T) {
			code, _ := send("https://other.example.com:"+sp+"/", "ANTHROPIC_API_KEY", "/ca/ca.pem")
			if got, _ := hl.get("api"); code != 200 || got != standIn {
				t.Errorf("stand-in to other.example.com: %d, server received %q; want the stand-in unchanged", code, redact(got, real))
			}
		})
		t.Run("other-value-unchanged", func(t *testing.T) {
			code, _ := send(apiURL, "=sk-ant-api03-somebodyelse")
			if got, _ := hl.get("api"); code != 200 || got != "sk-ant-api03-somebodyelse" {
				t.Errorf("another key to the bound host: %d, server received %q", code, redact(got, real))
			}
		})
		t.Run("untrusted-upstream-502", func(t *testing.T) {
			code, body := send("https://evil.example.com:"+ep+"/", "ANTHROPIC_API_KEY")
			if _, n := hl.get("evil"); code != 502 || !strings.Contains(body, "certificate") || n != 0 {
				t.Errorf("bound host with an untrusted certificate: %d %q (it received %d requests); want 502 saying why", code, body, n)
			}
		})
		t.Run("file-secret", func(t *testing.T) {
			var f struct {
				Content   string `json:"content"`
				ReadErr   string `json:"read_err"`
				Mode      uint32 `json:"mode"`
				UID       uint32 `json:"uid"`
				Tmpfs     bool   `json:"tmpfs"`
				WriteErr  string `json:"write_err"`
				ChmodErr  string `json:"chmod_err"`
				CreateErr string `json:"create_err"`
				UIDSelf   uint32 `json:"uid_self"`
			}
			execJSON(t, te, eng, &f, "/probe/testprobe", "secret-file", "/run/secrets/deploy")
			if f.Content != deploy || f.Mode != 0o400 || f.UID != f.UIDSelf || !f.Tmpfs {
				t.Errorf("/run/secrets/deploy: readable=%t mode %o uid %d (agent %d) tmpfs %t; want the value, 0400, the agent's, tmpfs", f.Content == deploy, f.Mode, f.UID, f.UIDSelf, f.Tmpfs)
			}
			if f.WriteErr == "" || f.ChmodErr == "" || f.CreateErr == "" {
				t.Errorf("the agent can change its secret file: write %q chmod %q create %q", f.WriteErr, f.ChmodErr, f.CreateErr)
			}
			var g struct {
				Content string `json:"content"`
				ReadErr string `json:"read_err"`
			}
			execJSON(t, te, rev, &g, "/probe/testprobe", "secret-file", "/run/secrets/deploy")
			if g.ReadErr == "" || g.Content != "" {
				t.Errorf("another agent reads eng's file secret")
			}
		})
		t.Run("absent-from-inspect", func(t *testing.T) {
			for _, id := range []string{eng, rev} {
				_, raw, err := te.raw.ContainerInspectWithRaw(ctx(t), id, false)
				if err != nil {
					t.Fatal(err)
				}
				for what, v := range values {
					if strings.Contains(string(raw), v) {
						t.Errorf("the %s is in docker inspect of %s", what, id[:12])
					}
				}
			}
		})
		t.Run("absent-from-cli-output", func(t *testing.T) {
			for _, args := range [][]string{
				{"validate", path}, {"plan", path}, {"status", path, "-o", "json"},
				{"audit", path}, {"logs", path, "eng"}, {"doctor"}, {"egress", "check", path, "eng", "api.example.com:" + sp},
			} {
				cmd := exec.Command(filepath.Join(bins, "runner"), args...)
				cmd.Env = append(os.Environ(), "DOCKER_HOST="+te.host)
				out, err := cmd.CombinedOutput()
				if err != nil && args[0] != "doctor" { // doctor fails on warnings a CI host may have
					t.Errorf("runner %s: %v\n%s", strings.Join(args, " "), err, out)
				}
				for what, v := range values {
					if strings.Contains(string(out), v) {
						t.Errorf("runner %s prints the %s", args[0], what)
					}
				}
			}
		})
		t.Run("transcript-redacted", func(t *testing.T) {
			logs := ""
			for deadline := time.Now().Add(30 * time.Second); !strings.Contains(logs, "printed-done") && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
				var b bytes.Buffer
				r.Logs(ctx(t), cfg, "eng", runner.LogsOptions{Out: &b})
				logs = b.String()
			}
			if !strings.Contains(logs, "printed-done") {
				t.Fatalf("the pane's output never reached the transcript:\n%s", logs)
			}
			if strings.Contains(logs, deploy) || strings.Contains(logs, deploy[12:]) || !strings.Contains(logs, "[secret DEPLOY_KEY]") {
				t.Errorf("the transcript does not show the printed file secret as [secret DEPLOY_KEY]:\n%s", redact(logs, deploy))
			}
		})
		t.Run("audited", func(t *testing.T) {
			log, err := os.ReadFile(st.Audit())
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(log), `"secret_inject"`) || !strings.Contains(string(log), "ANTHROPIC_API_KEY") {
				t.Errorf("no secret_inject event in the audit log")
			}
		})

		// Rotation: a new from_file value is applied in place.
		rotated := randomValue("sk-ant-api03-", 30) // another length: the stand-in stays
		if err := os.WriteFile(keyFile, []byte(rotated), 0o600); err != nil {
			t.Fatal(err)
		}
		values["rotated key"] = rotated
		res2, err := r.Apply(ctx(t), load(t, path))
		if err != nil {
			t.Fatalf("apply after rotation: %v", err)
		}
		t.Run("rotation-in-place", func(t *testing.T) {
			if res2.IDs["eng"] != eng {
				t.Errorf("rotation replaced eng's container: %s -> %s", eng[:12], res2.IDs["eng"][:12])
			}
			if p, err := r.Plan(ctx(t), load(t, path)); err != nil || p.Changes() {
				t.Errorf("plan after the rotation is not a no-op (the hash must not cover the value): %v\n%s", err, p)
			}
			code, _ := send(apiURL, "ANTHROPIC_API_KEY")
			if got, _ := hl.get("api"); code != 200 || got != rotated {
				t.Errorf("after rotation the server received %q (%d); want the new value", redact(redact(got, real), rotated), code)
			}
		})

		t.Run("absent-from-state-but-the-store", func(t *testing.T) {
			filepath.WalkDir(st.Dir(), func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() || d.Type()&fs.ModeType != 0 {
					return nil
				}
				if filepath.Base(p) == "store.json" {
					if fi, _ := d.Info(); fi.Mode().Perm() != 0o600 {
						t.Errorf("the store %s has mode %v", p, fi.Mode().Perm())
					}
					return nil
				}
				b, _ := os.ReadFile(p)
				for what, v := range values {
					if strings.Contains(string(b), v) {
						t.Errorf("the %s is in state file %s", what, p)
					}
				}
				return nil
			})
		})
	})
}

func redact(s, v string) string { return strings.ReplaceAll(s, v, "[the real value]") }

// containerPids are the host pids of every process in the pid namespace
// of host pid init (a container's), found from the host's /proc.
func containerPids(t *testing.T, init int) []int {
	t.Helper()
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", init))
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var p int
		if _, err := fmt.Sscanf(e.Name(), "%d", &p); err != nil {
			continue
		}
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", p)); err == nil && l == ns {
			out = append(out, p)
		}
	}
	return out
}
