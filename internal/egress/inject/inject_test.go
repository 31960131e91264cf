package inject_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runner-dev/runner/internal/egress/inject"
	"github.com/runner-dev/runner/internal/egress/proxy"
	"github.com/runner-dev/runner/internal/egress/rules"
)

const (
	standIn = "sk-ant-api03-STANDINxxxxxxxxxxxxxxxx"
	real    = "sk-ant-api03-REALVALUEyyyyyyyyyyyyyy"
)

type mapResolver map[string][]netip.Addr

func (m mapResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if a, ok := m[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// seen records the headers each test server received.
type seen struct {
	mu  sync.Mutex
	got []http.Header
}

func (s *seen) handler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		h := r.Header.Clone()
		h.Set("X-Server", name)
		s.got = append(s.got, h)
		s.mu.Unlock()
		io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "hello from %s", name)
	})
}

func (s *seen) last() http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.got) == 0 {
		return nil
	}
	return s.got[len(s.got)-1]
}

// env is a proxy with an injector, two trusted HTTPS servers (api.example.com,
// bound; other.example.com, not bound) and one whose certificate the proxy does
// not trust (evil.example.com, also bound).
type env struct {
	t      testing.TB
	in     *inject.Injector
	client *http.Client
	seen   *seen
	events chan inject.Event
	ports  map[string]netip.AddrPort
}

func newEnv(t testing.TB, bindings func(r *rules.Rules) map[string][]inject.Binding) *env {
	t.Helper()
	e := &env{t: t, seen: &seen{}, events: make(chan inject.Event, 100)}
	api := httptest.NewTLSServer(e.seen.handler("api"))
	other := httptest.NewTLSServer(e.seen.handler("other"))
	// evil.example.com has a certificate of a CA the proxy does not trust.
	otherCA, err := inject.LoadCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	evilCert, err := otherCA.Leaf("evil.example.com")
	if err != nil {
		t.Fatal(err)
	}
	untrusted := httptest.NewUnstartedServer(e.seen.handler("evil"))
	untrusted.TLS = &tls.Config{Certificates: []tls.Certificate{*evilCert}}
	untrusted.StartTLS()
	t.Cleanup(api.Close)
	t.Cleanup(other.Close)
	t.Cleanup(untrusted.Close)
	// httptest's servers share one certificate for *.example.com: the
	// proxy's roots (the test's stand-in for the host's) hold it.
	roots := x509.NewCertPool()
	roots.AddCert(api.Certificate())

	dir := t.TempDir()
	ca, err := inject.LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ca2, err := inject.LoadCA(dir); err != nil || string(ca2.CertPEM()) != string(ca.CertPEM()) {
		t.Fatalf("the CA is not kept across loads: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "ca-key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("CA key file: %v %v", fi, err)
	}
	e.in = inject.New(inject.Options{CA: ca, Roots: roots, Audit: func(ev inject.Event) { e.events <- ev }})

	ports := map[string]netip.AddrPort{}
	for name, s := range map[string]*httptest.Server{"api.example.com": api, "other.example.com": other, "evil.example.com": untrusted} {
		ports[name] = netip.MustParseAddrPort(s.Listener.Addr().String())
	}
	var allow []string
	res := mapResolver{}
	for name, ap := range ports {
		allow = append(allow, fmt.Sprintf("%s:%d", name, ap.Port()), ap.String())
		res[name] = []netip.Addr{ap.Addr()}
	}
	egress, err := rules.Compile(allow, nil)
	if err != nil {
		t.Fatal(err)
	}
	bound, err := rules.Compile([]string{fmt.Sprintf("api.example.com:%d", ports["api.example.com"].Port()), fmt.Sprintf("evil.example.com:%d", ports["evil.example.com"].Port())}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.in.SetBindings(bindings(bound))

	sock := filepath.Join(t.TempDir(), "p.sock")
	srv, err := proxy.New(proxy.Config{Agents: map[string]proxy.AgentConfig{"eng": {Socket: sock, Rules: egress}}, Resolver: res, Intercept: e.in})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	agentRoots := x509.NewCertPool()
	agentRoots.AppendCertsFromPEM(ca.CertPEM())
	agentRoots.AddCert(api.Certificate()) // the end-to-end tunnel to other.example.com verifies with it
	proxyURL, _ := url.Parse("http://proxy.invalid")
	tr := &http.Transport{
		Proxy: http.ProxyURL(proxyURL),
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
		TLSClientConfig:   &tls.Config{RootCAs: agentRoots},
		ForceAttemptHTTP2: false,
	}
	t.Cleanup(tr.CloseIdleConnections)
	e.client = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	e.ports = ports
	return e
}

func (e *env) url(host string) string {
	return fmt.Sprintf("https://%s:%d/v1/messages", host, e.ports[host].Port())
}

func (e *env) get(host, header, value string) (*http.Response, string) {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.url(host), strings.NewReader(`{"model":"x"}`))
	if header != "" {
		req.Header.Set(header, value)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s: %v", host, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func oneBinding(header, scheme string) func(*rules.Rules) map[string][]inject.Binding {
	return func(r *rules.Rules) map[string][]inject.Binding {
		return map[string][]inject.Binding{"eng": {{Name: "ANTHROPIC_API_KEY", Hosts: r, Header: header, Scheme: scheme, StandIn: standIn, Value: real}}}
	}
}

func TestInjectsOnlyTheStandInTowardTheBoundHost(t *testing.T) {
	e := newEnv(t, oneBinding("X-Api-Key", ""))

	// The stand-in toward the bound host arrives as the real value.
	resp, body := e.get("api.example.com", "x-api-key", standIn)
	if resp.StatusCode != 200 || body != "hello from api" {
		t.Fatalf("bound host: %d %q", resp.StatusCode, body)
	}
	if got := e.seen.last().Get("X-Api-Key"); got != real {
		t.Errorf("api.example.com received x-api-key %q, want the real value", got)
	}
	if resp.TLS == nil || resp.TLS.PeerCertificates[0].Issuer.CommonName != "runner run CA (credential injection)" {
		t.Errorf("the agent's TLS toward the bound host is not the run CA's")
	}
	select {
	case ev := <-e.events:
		if ev.Agent != "eng" || ev.Secret != "ANTHROPIC_API_KEY" || ev.Host != "api.example.com" {
			t.Errorf("audit event %+v", ev)
		}
	case <-time.After(time.Second):
		t.Error("no audit event for the injection")
	}

	// Another value in that header passes unchanged, not given the real one.
	e.get("api.example.com", "x-api-key", "sk-ant-api03-somebodyelsekeyzzzzzzzzz")
	if got := e.seen.last().Get("X-Api-Key"); got != "sk-ant-api03-somebodyelsekeyzzzzzzzzz" {
		t.Errorf("another value arrived as %q", got)
	}
	// The stand-in in another header passes unchanged.
	e.get("api.example.com", "Authorization", "Bearer "+standIn)
	if got := e.seen.last().Get("Authorization"); got != "Bearer "+standIn {
		t.Errorf("stand-in in an unbound header arrived as %q", got)
	}

	// The stand-in toward another allowed host arrives unchanged, through
	// an end-to-end tunnel (the server's own certificate).
	resp, body = e.get("other.example.com", "x-api-key", standIn)
	if body != "hello from other" {
		t.Fatalf("other host: %d %q", resp.StatusCode, body)
	}
	if got := e.seen.last().Get("X-Api-Key"); got != standIn {
		t.Errorf("other.example.com received %q, want the stand-in unchanged", got)
	}
	if resp.TLS.PeerCertificates[0].Issuer.CommonName == "runner run CA (credential injection)" {
		t.Error("a host with no credential was intercepted")
	}

	// Rotation: the next request carries the new value.
	e.in.SetBindings(map[string][]inject.Binding{"eng": {{Name: "ANTHROPIC_API_KEY", Hosts: mustRules(t, fmt.Sprintf("api.example.com:%d", e.ports["api.example.com"].Port())), Header: "X-Api-Key", StandIn: standIn, Value: real + "-rotated"}}})
	e.get("api.example.com", "x-api-key", standIn)
	if got := e.seen.last().Get("X-Api-Key"); got != real+"-rotated" {
		t.Errorf("after rotation api.example.com received %q", got)
	}
}

func mustRules(t testing.TB, allow ...string) *rules.Rules {
	r, err := rules.Compile(allow, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestInjectsBearer(t *testing.T) {
	e := newEnv(t, oneBinding("Authorization", "Bearer"))
	e.get("api.example.com", "Authorization", "Bearer "+standIn)
	if got := e.seen.last().Get("Authorization"); got != "Bearer "+real {
		t.Errorf("Authorization arrived as %q", got)
	}
	e.get("api.example.com", "Authorization", "Basic "+standIn)
	if got := e.seen.last().Get("Authorization"); got != "Basic "+standIn {
		t.Errorf("another scheme arrived as %q", got)
	}
}

func TestUntrustedUpstreamIs502(t *testing.T) {
	e := newEnv(t, oneBinding("X-Api-Key", ""))
	n := len(e.seen.got)
	resp, body := e.get("evil.example.com", "x-api-key", standIn)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "certificate") || !strings.Contains(body, "evil.example.com") {
		t.Errorf("untrusted upstream: %d %q, want 502 saying the certificate failed", resp.StatusCode, body)
	}
	if len(e.seen.got) != n {
		t.Error("the request reached a server whose certificate failed")
	}
}

func TestHostHeaderMustMatchTheTunnel(t *testing.T) {
	e := newEnv(t, oneBinding("X-Api-Key", ""))
	req, _ := http.NewRequest("GET", e.url("api.example.com"), nil)
	req.Host = "other.example.com"
	req.Header.Set("X-Api-Key", standIn)
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest || len(e.seen.got) != 0 {
		t.Errorf("Host other.example.com inside api.example.com's tunnel: %d %q (server saw %d requests)", resp.StatusCode, body, len(e.seen.got))
	}
}
