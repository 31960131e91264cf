package runner

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/runner-dev/runner/internal/egress/proxy"
)

// doctorEgressName is what doctor asks the host's resolver for: the model
// API most agents need first.
const doctorEgressName = "api.anthropic.com"

// DoctorEgress says whether the egress proxy can resolve names on this
// host: it resolves names itself, on the host, with the host's resolver
// (the container has no DNS at all), so a host without working DNS gives
// agents with egress nothing but refusals. A failure is a warning: agents
// without egress do not care.
func DoctorEgress(ctx context.Context) Check {
	var res proxy.Resolver = net.DefaultResolver
	if r := testEgressResolver(); r != nil {
		res = r
	}
	return doctorEgress(ctx, res, "/etc/resolv.conf")
}

func doctorEgress(ctx context.Context, res proxy.Resolver, resolvConf string) Check {
	c := Check{Name: "egress"}
	if h := testEgressHosts(); h != "" {
		c.Detail = "TEST-ONLY: " + h + "; "
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	start := time.Now()
	addrs, err := res.LookupNetIP(ctx, "ip", doctorEgressName)
	took := time.Since(start).Round(time.Millisecond)
	if err != nil {
		servers := nameservers(resolvConf)
		c.Detail += fmt.Sprintf("the egress proxy resolves names on this host and cannot: %s: %v (nameservers in %s: %s); agents with egress will get only refusals until the host resolves names", doctorEgressName, err, resolvConf, servers)
		return c
	}
	var public []string
	for _, a := range addrs {
		if proxy.Restricted(a) == "" {
			public = append(public, a.String())
		}
	}
	if len(public) == 0 {
		c.Detail += fmt.Sprintf("%s resolves only to addresses the proxy refuses (%v): this host's resolver answers with local or private addresses (a captive portal, a filtering resolver?); allowed names would be refused", doctorEgressName, addrs)
		return c
	}
	c.OK = true
	c.Detail += fmt.Sprintf("the proxy can resolve names on this host (%s -> %s in %s)", doctorEgressName, strings.Join(public, ", "), took)
	return c
}

// nameservers lists resolv.conf's nameserver lines, for the message.
func nameservers(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "unreadable: " + err.Error()
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "nameserver" {
			if _, err := netip.ParseAddr(f[1]); err == nil {
				out = append(out, f[1])
			}
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}
