package proxy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/runner-dev/runner/internal/egress/rules"
)

var lo = netip.MustParseAddr("127.0.0.1")

// blob is what the test servers serve: 4 MiB of seeded random bytes.
var blob = func() []byte {
	b := make([]byte, 4<<20)
	rand.New(rand.NewSource(8)).Read(b)
	return b
}()

// testHandler serves /blob and answers a POST with the SHA-256 of its body.
func testHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/blob", func(w http.ResponseWriter, r *http.Request) { w.Write(blob) })
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "host=%s uri=%s secret=%q pa=%q conn=%q", r.Host, r.RequestURI, r.Header.Get("X-Secret"), r.Header.Get("Proxy-Authorization"), r.Header.Get("Connection"))
	})
	mux.HandleFunc("/sum", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		io.Copy(h, r.Body)
		fmt.Fprintf(w, "%x host=%s", h.Sum(nil), r.Host)
	})
	return mux
}

// world is a proxy for agents eng and other, and the servers they reach.
// eng may reach www / plain / echo / other.example.com; the servers are on
// 127.0.0.1, which eng's rules name exactly (as an IP entry would).
func world(t *testing.T, lim Limits) (*harness, *servers, *fakeRules) {
	s := startServers(t, testHandler())
	named := map[netip.AddrPort]string{}
	for _, a := range []netip.AddrPort{s.plainAddr, s.tlsAddr, s.echoAddr} {
		named[a] = a.String()
	}
	eng := &fakeRules{
		allow: []string{"www.example.com", "plain.example.com", "other.example.com", "echo.example.com", "echo2.example.com"},
		deny:  []string{"denied.example.com"},
		named: named,
	}
	other := &fakeRules{allow: eng.allow, named: named}
	res := mapResolver{}
	for _, n := range []string{"www", "plain", "other", "denied", "unlisted", "echo", "echo2"} {
		res[n+".example.com"] = []netip.Addr{lo}
	}
	return newHarness(t, map[string]*fakeRules{"eng": eng, "other": other}, res, lim), s, eng
}

func TestAllowedReachTheServerByteExact(t *testing.T) {
	h, s, _ := world(t, Limits{})
	for _, tc := range []struct {
		name, url string
		port      uint16
	}{
		{"http", "http://plain.example.com:%d", s.plainAddr.Port()},
		{"https-connect", "https://www.example.com:%d", s.tlsAddr.Port()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := fmt.Sprintf(tc.url, tc.port)
			c := h.client("eng", s.tlsConfig(""))
			resp, err := c.Get(base + "/blob")
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, blob) {
				t.Fatalf("GET /blob: %v %s, %d bytes, equal=%v", err, resp.Status, len(got), bytes.Equal(got, blob))
			}
			up := blob[:3<<20+17]
			resp, err = c.Post(base+"/sum", "application/octet-stream", bytes.NewReader(up))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			sum := sha256.Sum256(up)
			if !strings.HasPrefix(string(b), hex.EncodeToString(sum[:])) {
				t.Fatalf("the server got other bytes than were sent: %q", b)
			}
			host := fmt.Sprintf("host=%s:%d", strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(tc.url, "http://"), "https://"), ":%d"), tc.port)
			if !strings.HasSuffix(string(b), host) {
				t.Errorf("the server saw %q, want %s", b, host)
			}
			e := h.waitEvent("allow with bytes", func(e Event) bool {
				return e.Kind == "allow" && e.Agent == "eng" && e.BytesDown >= int64(len(blob)) && e.Port == int(tc.port)
			})
			if e.Addr != lo || e.Rule == "" || e.Duration <= 0 {
				t.Errorf("allow event lacks address, rule or duration: %+v", e)
			}
		})
	}
	waitOpen(t, h, "eng", 0) // bytes are counted as each copy returns
	st := h.srv.Stats()["eng"]
	if st.Allowed < 4 || st.BytesDown < 2*int64(len(blob)) || st.BytesUp < 2*(3<<20) || len(st.Destinations) != 2 {
		t.Errorf("stats: %+v", st)
	}
}

func TestRefusals(t *testing.T) {
	h, s, _ := world(t, Limits{})
	plain, tlsPort := s.plainAddr.Port(), s.tlsAddr.Port()
	for _, tc := range []struct {
		name, head string
		want       []string
	}{
		{"deny-entry", fmt.Sprintf("CONNECT denied.example.com:%d HTTP/1.1\r\n\r\n", tlsPort),
			[]string{`deny entry "denied.example.com"`, `agent "eng"'s egress deny list in agents.hcl`}},
		{"unlisted", fmt.Sprintf("CONNECT unlisted.example.com:%d HTTP/1.1\r\n\r\n", tlsPort),
			[]string{"no rule allows it", fmt.Sprintf(`add "unlisted.example.com:%d" to agent "eng"'s egress allow list in agents.hcl`, tlsPort)}},
		{"unlisted-default-port", "GET http://unlisted.example.com/x HTTP/1.1\r\nHost: unlisted.example.com\r\n\r\n",
			[]string{"GET http://unlisted.example.com:80", `add "unlisted.example.com" to agent "eng"'s egress allow list`}},
		{"ip-literal-of-an-allowed-name", fmt.Sprintf("CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n", tlsPort),
			[]string{"no rule allows it", fmt.Sprintf(`add "127.0.0.1:%d"`, tlsPort)}},
		{"ip-literal-plain", fmt.Sprintf("GET http://127.0.0.1:%d/blob HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", plain, plain),
			[]string{"no rule allows it"}},
		{"host-header-mismatch", fmt.Sprintf("GET http://plain.example.com:%d/blob HTTP/1.1\r\nHost: denied.example.com:%d\r\n\r\n", plain, plain),
			[]string{`the Host header says "denied.example.com:`, "not the URL's host"}},
		{"host-header-port-mismatch", fmt.Sprintf("GET http://plain.example.com:%d/blob HTTP/1.1\r\nHost: plain.example.com\r\n\r\n", plain),
			[]string{"the Host header says"}},
		{"two-host-headers", fmt.Sprintf("GET http://plain.example.com:%d/blob HTTP/1.1\r\nHost: plain.example.com:%d\r\nHost: x.example.com\r\n\r\n", plain, plain),
			[]string{"the Host header says"}},
		{"hostile-host-header", fmt.Sprintf("GET http://plain.example.com:%d/ HTTP/1.1\r\nHost: \x1b]52;c;AAAA\x07\r\n\r\n", plain),
			nil}, // a control character in a value: 400, and nothing raw echoed
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := h.rawRequest("eng", tc.head)
			if tc.want == nil {
				if resp.StatusCode != 400 || strings.Contains(body, "\x1b") {
					t.Fatalf("%s %q", resp.Status, body)
				}
				checkLine(t, body, `agent "eng"`)
				return
			}
			if resp.StatusCode != 403 {
				t.Fatalf("%s %q, want 403", resp.Status, body)
			}
			checkLine(t, body, append(tc.want, `agent "eng"`, "runner egress:")...)
			h.waitEvent("deny "+tc.name, func(e Event) bool { return e.Kind == "deny" && e.Reason+"\n" == body })
		})
	}
	t.Run("sni-mismatch", func(t *testing.T) {
		c := h.connectTunnel("eng", fmt.Sprintf("www.example.com:%d", tlsPort))
		defer c.Close()
		tc := tls.Client(c, s.tlsConfig("other.example.com"))
		c.SetDeadline(time.Now().Add(10 * time.Second))
		err := tc.Handshake()
		if err == nil || !strings.Contains(err.Error(), "access denied") {
			t.Fatalf("handshake with SNI other.example.com through CONNECT www.example.com: %v, want access denied", err)
		}
		e := h.waitEvent("sni deny", func(e Event) bool { return e.Kind == "deny" && strings.Contains(e.Reason, "TLS server name") })
		checkLine(t, e.Reason+"\n", `"other.example.com"`, "domain fronting", fmt.Sprintf("CONNECT www.example.com:%d", tlsPort), `agent "eng"`)
	})
	t.Run("http-inside-connect", func(t *testing.T) {
		// Cleartext HTTP through CONNECT would choose its site by a Host
		// header the proxy never checked.
		c := h.connectTunnel("eng", fmt.Sprintf("plain.example.com:%d", plain))
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET /blob HTTP/1.1\r\nHost: denied.example.com\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 403 {
			t.Fatalf("%s %q", resp.Status, body)
		}
		checkLine(t, string(body), "plain HTTP inside a CONNECT tunnel", `agent "eng"`)
		// Other protocols pass: the echo server answers.
		e := h.connectTunnel("eng", fmt.Sprintf("echo.example.com:%d", s.echoAddr.Port()))
		defer e.Close()
		e.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(e, "SSH-2.0-x\r\n")
		got := make([]byte, 11)
		if _, err := io.ReadFull(e, got); err != nil || string(got) != "SSH-2.0-x\r\n" {
			t.Fatalf("a non-HTTP tunnel: %q %v", got, err)
		}
	})
	t.Run("sni-matching-is-allowed", func(t *testing.T) {
		c := h.connectTunnel("eng", fmt.Sprintf("WWW.Example.COM.:%d", tlsPort))
		defer c.Close()
		tc := tls.Client(c, s.tlsConfig("www.example.com"))
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("sni-on-an-ip-connect", func(t *testing.T) {
		// The rules allow this address by IP here; a server name on it
		// is still another host than the CONNECT's.
		h.srv.UpdateRules("other", &fakeRules{allow: []string{s.tlsAddr.String()}, named: map[netip.AddrPort]string{s.tlsAddr: s.tlsAddr.String()}})
		c := h.connectTunnel("other", s.tlsAddr.String())
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tls.Client(c, s.tlsConfig("www.example.com")).Handshake(); err == nil || !strings.Contains(err.Error(), "access denied") {
			t.Fatalf("SNI on an IP CONNECT: %v", err)
		}
	})
	st := h.srv.Stats()["eng"]
	if st.Denied < 8 {
		t.Errorf("stats count %d denials: %+v", st.Denied, st)
	}
	var fixed bool
	for _, d := range st.Destinations {
		if d.Host == "unlisted.example.com" && d.Denied > 0 && strings.Contains(d.Fix, `add "unlisted.example.com`) && d.Entry == fmt.Sprintf("unlisted.example.com:%d", tlsPort) {
			fixed = true
		}
	}
	if !fixed {
		t.Errorf("stats do not carry the line to add for unlisted.example.com: %+v", st.Destinations)
	}
}

// A name the rules allow that resolves to the host's own, private or
// metadata addresses is refused unless an IP entry names the address.
func TestRestrictedAddressesNeedAnIPEntry(t *testing.T) {
	s := startServers(t, testHandler())
	addrs := map[string]string{
		"loop":     "127.0.0.1",
		"metadata": "169.254.169.254",
		"ten":      "10.1.2.3",
		"rfc1918":  "192.168.1.1",
		"cgnat":    "100.64.0.1",
		"ula":      "fd00::1",
		"ll6":      "fe80::1",
		"mapped":   "::ffff:10.0.0.1",
		"mapped-l": "::ffff:127.0.0.1",
		"nat64":    "64:ff9b::a9fe:a9fe",
		"zero":     "0.0.0.0",
		"v6-lo":    "::1",
		"mcast":    "224.0.0.1",
	}
	res := mapResolver{}
	var allow []string
	for n, a := range addrs {
		res[n+".example.com"] = []netip.Addr{netip.MustParseAddr(a)}
		allow = append(allow, n+".example.com")
	}
	// Public first, restricted second: the proxy dials only what it may.
	res["mixed.example.com"] = []netip.Addr{netip.MustParseAddr("10.9.9.9"), lo}
	allow = append(allow, "mixed.example.com")
	h := newHarness(t, map[string]*fakeRules{"eng": {allow: allow}}, res, Limits{})
	port := s.echoAddr.Port()
	for n, a := range addrs {
		t.Run(n, func(t *testing.T) {
			resp, body := h.rawRequest("eng", fmt.Sprintf("CONNECT %s.example.com:%d HTTP/1.1\r\n\r\n", n, port))
			if resp.StatusCode != 403 {
				t.Fatalf("%s → %s: %s %q", n, a, resp.Status, body)
			}
			want := netip.MustParseAddr(a).Unmap().String()
			checkLine(t, body, "resolves to "+want, "only an IP entry may allow", fmt.Sprintf(`add "%s`, entryFor(want, int(port))))
			h.waitEvent("deny with the resolved address", func(e Event) bool {
				return e.Kind == "deny" && e.Host == n+".example.com" && e.Addr.String() == want && e.Entry == entryFor(want, int(port))
			})
		})
	}
	if resp, body := h.rawRequest("eng", fmt.Sprintf("CONNECT mixed.example.com:%d HTTP/1.1\r\n\r\n", port)); resp.StatusCode != 403 {
		t.Fatalf("a name resolving to private and loopback addresses: %s %q", resp.Status, body)
	}
	// The same name with an IP entry for the address is let through.
	h.srv.UpdateRules("eng", &fakeRules{allow: allow, named: map[netip.AddrPort]string{s.echoAddr: s.echoAddr.String()}})
	c := h.connectTunnel("eng", fmt.Sprintf("loop.example.com:%d", port))
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "ping")
	var b [4]byte
	if _, err := io.ReadFull(c, b[:]); err != nil || string(b[:]) != "ping" {
		t.Fatalf("echo through a named loopback address: %q %v", b, err)
	}
}

func TestUpdateRulesClosesForbiddenTunnels(t *testing.T) {
	h, s, eng := world(t, Limits{})
	port := s.echoAddr.Port()
	gone := h.connectTunnel("eng", fmt.Sprintf("echo.example.com:%d", port))
	defer gone.Close()
	stays := h.connectTunnel("eng", fmt.Sprintf("echo2.example.com:%d", port))
	defer stays.Close()
	for _, c := range []io.ReadWriter{gone, stays} {
		io.WriteString(c, "ping")
		var b [4]byte
		if _, err := io.ReadFull(c, b[:]); err != nil {
			t.Fatal(err)
		}
	}
	newRules := &fakeRules{named: eng.named}
	for _, a := range eng.allow {
		if a != "echo.example.com" {
			newRules.allow = append(newRules.allow, a)
		}
	}
	if err := h.srv.UpdateRules("eng", newRules); err != nil {
		t.Fatal(err)
	}
	if err := isClosed(gone, 5*time.Second); err != nil {
		t.Fatalf("the tunnel to echo.example.com, no longer allowed: %v", err)
	}
	stays.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(stays, "pong")
	var b [4]byte
	if _, err := io.ReadFull(stays, b[:]); err != nil || string(b[:]) != "pong" {
		t.Fatalf("the tunnel to echo2.example.com, still allowed, broke: %q %v", b, err)
	}
	h.waitEvent("revoked", func(e Event) bool {
		return e.Kind == "allow" && e.Host == "echo.example.com" && strings.Contains(e.Reason, "rules changed")
	})
	resp, body := h.rawRequest("eng", fmt.Sprintf("CONNECT echo.example.com:%d HTTP/1.1\r\n\r\n", port))
	if resp.StatusCode != 403 {
		t.Fatalf("a new CONNECT after the change: %s %q", resp.Status, body)
	}
	if h.srv.UpdateRules("nobody", newRules) == nil {
		t.Error("UpdateRules of an unknown agent succeeded")
	}
}

func TestSocketModeAndPlace(t *testing.T) {
	h, _, _ := world(t, Limits{})
	for name, sock := range h.sockets {
		st, err := os.Lstat(sock)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o666 {
			t.Errorf("%s's socket: %v", name, st.Mode())
		}
	}
	dir := t.TempDir()
	f := dir + "/proxy.sock"
	os.WriteFile(f, nil, 0o600)
	srv, err := New(Config{Agents: map[string]AgentConfig{"eng": {Socket: f, Rules: &fakeRules{}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(t.Context()); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("a file in the socket's place: %v", err)
	}
	for _, bad := range []Config{
		{},
		{Agents: map[string]AgentConfig{"Bad Name": {Socket: f, Rules: &fakeRules{}}}},
		{Agents: map[string]AgentConfig{"eng": {Socket: f}}},
		{Agents: map[string]AgentConfig{"a": {Socket: f, Rules: &fakeRules{}}, "b": {Socket: f, Rules: &fakeRules{}}}},
		{Agents: map[string]AgentConfig{"eng": {Socket: "/" + strings.Repeat("x", 120), Rules: &fakeRules{}}}},
	} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%+v) accepted", bad)
		}
	}
}

// The proxy with internal/egress/rules' own Checker: an IP entry lets a
// name through to loopback, a name entry alone does not, and a deny CIDR
// refuses a name that resolves into it.
func TestWithCompiledRules(t *testing.T) {
	s := startServers(t, testHandler())
	port := int(s.echoAddr.Port())
	compile := func(allow, deny []string) Checker {
		r, err := rules.Compile(allow, deny)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	res := mapResolver{"echo.example.com": {lo}, "pub.example.com": {netip.MustParseAddr("203.0.113.9")}}
	named := fmt.Sprintf("echo.example.com:%d", port)
	h := newHarness(t, map[string]*fakeRules{"eng": {}}, res, Limits{})
	h.srv.UpdateRules("eng", compile([]string{named}, nil))
	resp, body := h.rawRequest("eng", "CONNECT "+named+" HTTP/1.1\r\n\r\n")
	if resp.StatusCode != 403 {
		t.Fatalf("a name entry alone reached loopback: %s", resp.Status)
	}
	checkLine(t, body, "resolves to 127.0.0.1, a loopback address", fmt.Sprintf(`add "127.0.0.1:%d"`, port))
	h.srv.UpdateRules("eng", compile([]string{named, fmt.Sprintf("127.0.0.1:%d", port)}, nil))
	c := h.connectTunnel("eng", named)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "ping")
	var b [4]byte
	if _, err := io.ReadFull(c, b[:]); err != nil || string(b[:]) != "ping" {
		t.Fatalf("echo: %q %v", b, err)
	}
	// A deny CIDR over the resolved address closes it and refuses anew.
	h.srv.UpdateRules("eng", compile([]string{named, fmt.Sprintf("127.0.0.1:%d", port), "pub.example.com"}, []string{"127.0.0.0/8", "203.0.113.0/24"}))
	if err := isClosed(c, 5*time.Second); err != nil {
		t.Fatalf("tunnel into a now-denied CIDR: %v", err)
	}
	resp, body = h.rawRequest("eng", "CONNECT pub.example.com:443 HTTP/1.1\r\n\r\n")
	if resp.StatusCode != 403 {
		t.Fatalf("a name resolving into a deny CIDR: %s", resp.Status)
	}
	checkLine(t, body, `deny entry "203.0.113.0/24" covers`, "203.0.113.9")
}

// What goes upstream for a plain request: origin-form, the Host the URL
// names when the client sent none, no hop-by-hop headers, Connection: close.
func TestPlainRequestAsForwarded(t *testing.T) {
	h, s, _ := world(t, Limits{})
	port := s.plainAddr.Port()
	resp, body := h.rawRequest("eng", fmt.Sprintf("GET http://plain.example.com:%d/headers?a=1 HTTP/1.1\r\n"+
		"Proxy-Authorization: Basic eA==\r\nConnection: X-Secret, keep-alive\r\nX-Secret: s\r\n\r\n", port))
	want := fmt.Sprintf(`host=plain.example.com:%d uri=/headers?a=1 secret="" pa="" conn="close"`, port)
	if resp.StatusCode != 200 || body != want {
		t.Fatalf("%s %q, want %q", resp.Status, body, want)
	}
}
