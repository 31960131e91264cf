//go:build runnertest

package runner

import (
	"context"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/runner-dev/runner/internal/egress/proxy"
)

// TEST-ONLY. This file is compiled only with `-tags runnertest` (the e2e
// suite's build of runner, runner/e2e_test.go buildBinaries); `make build`
// and every release leave it out, and use egresstesthosts.go, whose
// resolver is the host's. Tests may not reach the internet, so the proxy
// of a runnertest build resolves the names in RUNNER_TEST_EGRESS_HOSTS
// ("name=127.0.0.1,name2=127.0.0.1") to the test's servers, and every
// other name to "no such host". Loopback stays restricted: the rules must
// still name 127.0.0.1 for a test name to reach it. To test what happens
// with an ordinary public address, a name may resolve into TEST-NET-3
// (203.0.113.0/24, never routed): the proxy judges that address as any
// public one, and its dialer then connects to 127.0.0.1 at the same port.
const testEgressHostsEnv = "RUNNER_TEST_EGRESS_HOSTS"

var testNet3 = netip.MustParsePrefix("203.0.113.0/24")

type testHosts map[string]netip.Addr

func (h testHosts) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := h[strings.ToLower(host)]; ok {
		return []netip.Addr{a}, nil
	}
	return nil, &net.DNSError{Err: "no such host (runnertest build: " + testEgressHostsEnv + ")", Name: host, IsNotFound: true}
}

// testEgressResolver is the resolver RUNNER_TEST_EGRESS_HOSTS describes,
// or nil (the host's) when it is unset. A malformed pair is skipped: the
// name then does not resolve, which the test sees.
func testEgressResolver() proxy.Resolver {
	v := os.Getenv(testEgressHostsEnv)
	if v == "" {
		return nil
	}
	h := testHosts{}
	for _, pair := range strings.Split(v, ",") {
		name, addr, ok := strings.Cut(strings.TrimSpace(pair), "=")
		a, err := netip.ParseAddr(addr)
		if ok && err == nil && name != "" {
			h[strings.ToLower(name)] = a
		}
	}
	return h
}

// testEgressDialer dials TEST-NET-3 addresses on loopback (see above),
// when RUNNER_TEST_EGRESS_HOSTS is set; nil otherwise.
func testEgressDialer() proxy.Dialer {
	if os.Getenv(testEgressHostsEnv) == "" {
		return nil
	}
	return testNet3Dialer{&net.Dialer{Timeout: 10 * time.Second}}
}

type testNet3Dialer struct{ d *net.Dialer }

func (t testNet3Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if ap, err := netip.ParseAddrPort(address); err == nil && testNet3.Contains(ap.Addr()) {
		address = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ap.Port()).String()
	}
	return t.d.DialContext(ctx, network, address)
}

// testEgressHosts is what doctor reports: this build resolves test names.
func testEgressHosts() string {
	if v := os.Getenv(testEgressHostsEnv); v != "" {
		return "runnertest build: names resolved from " + testEgressHostsEnv + "=" + v
	}
	return "runnertest build (" + testEgressHostsEnv + " unset: the host's resolver)"
}
